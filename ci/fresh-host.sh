#!/usr/bin/env bash
# Runs ci/setup-host.sh on a fresh Debian 12 in a chroot (debootstrap
# --variant=minbase bookworm, apt pointed at the mirror this machine uses),
# then checks that QEMU 10.x and the other host tools are there and that a
# second run installs nothing. Cases:
#   plain       nothing of QEMU installed; apt sources in deb822 (as cloud images)
#   qemu-utils  qemu-utils 10.x from bookworm-backports already installed, the
#               backports source gone again (as on the CI image); one-line
#               sources.list (as debootstrap and the installer write it)
# The minbase tree is cached as a tarball, and apt's downloaded packages and
# lists are kept, under <cache>/fresh-host/ (RIG_CACHE_DIR or ~/.cache/rig),
# so only the first run downloads. Needs root.
#   ci/fresh-host.sh [plain|qemu-utils|all]   (default: all)
#   FRESH_HOST_KEEP=1 keeps the chroots (their paths are printed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cases=${1:-all}
[ "$cases" = all ] && cases="plain qemu-utils"
[ "$(id -u)" = 0 ] || { echo "fresh-host: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "fresh-host: needs debootstrap" >&2; exit 2; }

cache=${RIG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rig}/fresh-host
mkdir -p "$cache/archives/partial" "$cache/lists/partial"

# The mirror this machine's apt uses (deb822 first, then one-line sources).
mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" {for (i=2; i<=NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
    /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 || true)
[ -n "$mirror" ] || { echo "fresh-host: no Debian mirror in /etc/apt sources" >&2; exit 3; }
mirror=${mirror%/}

t0=$(date +%s)
base=$cache/bookworm-minbase.tar
if [ ! -f "$base" ]; then
    echo "fresh-host: debootstrap --variant=minbase bookworm from $mirror (once; cached in $base)"
    tmp=$(mktemp -d /var/tmp/rig-fresh-base.XXXXXX)
    debootstrap --variant=minbase bookworm "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        { tail -20 "$cache/debootstrap.log" >&2; rm -rf "$tmp"; exit 3; }
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_*
    tar -C "$tmp" --one-file-system -cf "$base.tmp" . && mv "$base.tmp" "$base"
    rm -rf --one-file-system "$tmp"
    echo "fresh-host: base ready in $(($(date +%s) - t0)) s"
fi

# Runs "$@" in the chroot $root with /proc, /sys, /dev and the apt caches
# mounted in a private mount namespace (nothing stays mounted on the host).
in_chroot() {
    local root=$1
    shift
    unshare --mount --propagation private -- sh -ec '
        root=$1 cache=$2; shift 2
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        mount --bind "$cache/archives" "$root/var/cache/apt/archives"
        mount --bind "$cache/lists" "$root/var/lib/apt/lists"
        exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"
    ' sh "$root" "$cache" "$@"
}

fail() {
    echo "fresh-host[$case]: FAIL: $*" >&2
    exit 1
}

for case in $cases; do
    tc=$(date +%s)
    root=$(mktemp -d /var/tmp/rig-fresh.XXXXXX)
    [ -n "${FRESH_HOST_KEEP:-}" ] || trap 'rm -rf --one-file-system "$root"' EXIT
    tar -C "$root" -xf "$base"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # Harness settings, not the tested machine's: apt downloads into the
    # caches bound from the host as root; dpkg skips fsync and documentation
    # (the chroot is thrown away).
    echo 'APT::Sandbox::User "root";' >"$root/etc/apt/apt.conf.d/99fresh-host"
    printf 'force-unsafe-io\npath-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\n' \
        >"$root/etc/dpkg/dpkg.cfg.d/fresh-host"
    # No daemons started by package scripts inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    rm -f "$root/etc/apt/sources.list"
    case $case in
    plain)
        printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" >"$root/etc/apt/sources.list.d/debian.sources"
        ;;
    qemu-utils)
        printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$root/etc/apt/sources.list"
        echo "deb $mirror bookworm-backports main" >"$root/etc/apt/sources.list.d/preinstall.list"
        in_chroot "$root" apt-get update -qq
        in_chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -t bookworm-backports qemu-utils >/dev/null
        rm "$root/etc/apt/sources.list.d/preinstall.list"
        in_chroot "$root" apt-get update -qq
        in_chroot "$root" dpkg-query -W -f='${Version}\n' qemu-utils | grep -q '^1:10\.' ||
            fail "qemu-utils from backports did not install"
        ;;
    *)
        echo "fresh-host: unknown case $case (plain, qemu-utils, all)" >&2
        exit 2
        ;;
    esac
    cp "$repo/ci/setup-host.sh" "$root/tmp/setup-host.sh"
    echo "fresh-host[$case]: running ci/setup-host.sh in $root"
    in_chroot "$root" bash /tmp/setup-host.sh >"$root/tmp/setup-host.log" 2>&1 ||
        { cat "$root/tmp/setup-host.log" >&2; fail "ci/setup-host.sh failed"; }
    sed "s/^/    /" "$root/tmp/setup-host.log"
    version=$(in_chroot "$root" qemu-system-x86_64 --version | head -1)
    echo "$version" | grep -q 'version 10\.' || fail "QEMU is not 10.x: $version"
    for tool in busybox debootstrap make gcc dpkg-deb cpio file unshare chroot mksquashfs; do
        in_chroot "$root" sh -c "command -v $tool >/dev/null" || fail "$tool missing"
    done
    in_chroot "$root" file -L /bin/busybox | grep -q static || fail "/bin/busybox is not static"
    for pkg in busybox-static debootstrap dwarves libelf-dev bc flex bison libssl-dev debian-archive-keyring squashfs-tools; do
        in_chroot "$root" dpkg -s "$pkg" >/dev/null 2>&1 || fail "package $pkg missing"
    done
    # Idempotent: a second run installs nothing.
    again=$(in_chroot "$root" bash /tmp/setup-host.sh 2>&1) || fail "second run failed: $again"
    if echo "$again" | grep -q installing; then fail "second run installs again: $again"; fi
    echo "fresh-host[$case]: PASS ($version; $(($(date +%s) - tc)) s)"
    if [ -n "${FRESH_HOST_KEEP:-}" ]; then
        echo "fresh-host[$case]: kept $root"
    else
        rm -rf --one-file-system "$root"
        trap - EXIT
    fi
done
echo "fresh-host: all cases passed in $(($(date +%s) - t0)) s"
