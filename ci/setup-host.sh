#!/usr/bin/env bash
# Installs what the rig needs on a Debian 12 / Ubuntu host: QEMU (>= 10 where the
# distribution has it), busybox-static, the compilers for module builds, debootstrap,
# squashfs-tools (the guests' Debian roots of `rootfs = "debian"`).
# Idempotent: does nothing when everything is already there.
# ci/fresh-host.sh runs it on a fresh debootstrap'd Debian 12 (rig/tests/fresh_host.rs).
set -euo pipefail

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# `file` may not be installed yet: without it busybox counts as not static.
{ [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q static; } || need+=(busybox-static)
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
# Archive signatures for fetches and build chroots (not preinstalled on Ubuntu).
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v file >/dev/null || need+=(file)
command -v cpio >/dev/null || need+=(cpio)
command -v mksquashfs >/dev/null || need+=(squashfs-tools)
for pkg in libelf-dev bc flex bison libssl-dev dwarves; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

sudo=""
if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "setup-host: not root and sudo is not installed: run this as root (it installs packages with apt-get)" >&2
        exit 3
    fi
    sudo="sudo"
fi

# The Debian mirror the system already uses for `$1` (never a hard-coded
# one): deb822 sources first, then one-line sources.list entries, whose
# `[options]` are skipped.
system_mirror() {
    local suite=$1 f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && [ -z "$uri" ] || continue
        uri=$(awk -v suite="$suite" 'BEGIN { RS = "" }
            {
                deb = 0; hit = 0; uri = ""
                n = split($0, lines, "\n")
                for (i = 1; i <= n; i++) {
                    split(lines[i], w, /[ \t]+/)
                    if (w[1] == "Types:") for (j = 2; j in w; j++) if (w[j] == "deb") deb = 1
                    if (w[1] == "Suites:") for (j = 2; j in w; j++) if (w[j] == suite) hit = 1
                    if (w[1] == "URIs:" && uri == "") uri = w[2]
                }
                if (deb && hit && uri != "") { print uri; exit }
            }' "$f")
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && [ -z "$uri" ] || continue
        uri=$(awk -v suite="$suite" '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "$f")
    done
    echo "$uri"
}

. /etc/os-release
backports=""
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    # QEMU 7.2 (bookworm) double-faults 6.12 guests under TCG; backports has 10.x.
    qver=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/.*version \([0-9]*\).*/\1/p' || true)
    if [ -z "$qver" ] || [ "$qver" -lt 10 ]; then
        src=/etc/apt/sources.list.d/rig-bookworm-backports.sources
        if [ -z "$(system_mirror bookworm-backports)" ]; then
            uri=$(system_mirror bookworm)
            if [ -z "$uri" ]; then
                echo "setup-host: cannot find the Debian mirror for bookworm in /etc/apt/sources.list or /etc/apt/sources.list.d/" >&2
                exit 3
            fi
            printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$uri" | $sudo tee "$src" >/dev/null
        fi
        backports=yes
        # QEMU comes from backports only: the stable one conflicts with a
        # backports qemu-utils that may already be installed.
        kept=()
        for pkg in "${need[@]}"; do [ "$pkg" = qemu-system-x86 ] || kept+=("$pkg"); done
        need=("${kept[@]}")
    fi
fi

install() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ ${#need[@]} -gt 0 ] || [ -n "$backports" ]; then
    echo "setup-host: installing ${need[*]} ${backports:+qemu-system-x86 (bookworm-backports)}"
    $sudo apt-get update -qq
    [ ${#need[@]} -eq 0 ] || install "${need[@]}"
    # Only QEMU comes from backports; everything else stays on the stable suite.
    [ -z "$backports" ] || install -t bookworm-backports qemu-system-x86
fi
qemu-system-x86_64 --version | head -1
qver=$(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
if [ "${qver:-0}" -lt 10 ]; then
    # Ubuntu 24.04 ships QEMU 8.2 and no newer build; nothing is installed
    # from other distributions.
    echo "setup-host: QEMU $qver is what ${PRETTY_NAME:-this system} ships; the rig warns that QEMU < 10 double-faults 6.12 guests under TCG now and then (with KVM, as on GitHub's runners, it does not apply)"
fi
