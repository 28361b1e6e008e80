#!/usr/bin/env bash
# Saves or restores the build chroots (<cache>/chroots/*, owned by root) as
# one tarball that the CI cache can hold:
#   ci/chroot-cache.sh save    <rig cache dir> <tarball>
#   ci/chroot-cache.sh restore <rig cache dir> <tarball>
# Restoring a missing tarball does nothing (rig then creates the chroot).
set -euo pipefail
mode=${1:?save or restore} cache=${2:?rig cache dir} tarball=${3:?tarball}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
case $mode in
save)
    if [ ! -d "$cache/chroots" ] || ! ls "$cache"/chroots/*/.rig-chroot.json >/dev/null 2>&1; then
        echo "chroot-cache: no complete chroot under $cache/chroots"
        exit 0
    fi
    mkdir -p "$(dirname "$tarball")"
    # Complete chroots only (they hold .rig-chroot.json); not temporaries or locks.
    for d in "$cache"/chroots/*/; do
        d=${d%/}
        if [ -f "$d/.rig-chroot.json" ]; then basename "$d"; fi
    done >"$tarball.list"
    $sudo tar -C "$cache/chroots" --one-file-system -cf "$tarball" -T "$tarball.list"
    $sudo chown "$(id -u):$(id -g)" "$tarball"
    echo "chroot-cache: saved $(tr '\n' ' ' <"$tarball.list")to $tarball ($(du -h "$tarball" | cut -f1))"
    rm -f "$tarball.list"
    ;;
restore)
    if [ ! -f "$tarball" ]; then
        echo "chroot-cache: no $tarball: the chroot will be created"
        exit 0
    fi
    mkdir -p "$cache/chroots"
    $sudo tar -C "$cache/chroots" -xf "$tarball"
    echo "chroot-cache: restored $tarball into $cache/chroots"
    ;;
*)
    echo "usage: $0 save|restore <rig cache dir> <tarball>" >&2
    exit 2
    ;;
esac
