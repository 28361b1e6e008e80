#!/usr/bin/env bash
# Installs what the rig needs on a Debian 12 / Ubuntu host: QEMU (>= 10 where the
# distribution has it), busybox-static, the compilers for module builds, debootstrap.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q static || need+=(busybox-static)
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v debootstrap >/dev/null || need+=(debootstrap)
# Archive signatures for fetches and build chroots (not preinstalled on Ubuntu).
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v file >/dev/null || need+=(file)
command -v cpio >/dev/null || need+=(cpio)
for pkg in libelf-dev bc flex bison libssl-dev dwarves; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

. /etc/os-release
backports=""
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    # QEMU 7.2 (bookworm) double-faults 6.12 guests under TCG; backports has 10.x.
    qver=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/.*version \([0-9]*\).*/\1/p' || true)
    if [ -z "$qver" ] || [ "$qver" -lt 10 ]; then
        src=/etc/apt/sources.list.d/rig-bookworm-backports.sources
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            # Reuse the mirror the system already uses; never hard-code one.
            uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
            [ -n "$uri" ] || uri=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
            [ -n "$uri" ] || { echo "setup-host: cannot find the Debian mirror in /etc/apt sources" >&2; exit 3; }
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
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
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
