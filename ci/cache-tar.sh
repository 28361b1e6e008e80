#!/usr/bin/env bash
# Packs or unpacks the rig cache as one tarball that a CI cache can hold.
# The build chroots in it are root's, so tar runs as root (sudo when not
# root) and keeps owners and modes:
#   ci/cache-tar.sh save    <rig cache dir> <tarball>
#   ci/cache-tar.sh restore <rig cache dir> <tarball>
# Interrupted chroot creations (chroots/.<name>.tmp) and saved boots (one
# rig build's, remade in seconds) are left out. Restoring
# a missing tarball does nothing (the rig then downloads and creates).
set -euo pipefail
mode=${1:?save or restore} cache=${2:?rig cache dir} tarball=${3:?tarball}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
case $mode in
save)
    if [ ! -d "$cache" ]; then
        echo "cache-tar: no $cache: nothing to save"
        exit 0
    fi
    mkdir -p "$(dirname "$tarball")"
    $sudo tar -C "$cache" --one-file-system --exclude='./chroots/.*' --exclude='./boots' -cf "$tarball" .
    $sudo chown "$(id -u):$(id -g)" "$tarball"
    echo "cache-tar: saved $cache to $tarball ($(du -h "$tarball" | cut -f1))"
    ;;
restore)
    if [ ! -f "$tarball" ]; then
        echo "cache-tar: no $tarball: kernels are downloaded and chroots created"
        exit 0
    fi
    mkdir -p "$cache"
    $sudo tar -C "$cache" -xpf "$tarball"
    echo "cache-tar: restored $tarball into $cache"
    ;;
*)
    echo "usage: $0 save|restore <rig cache dir> <tarball>" >&2
    exit 2
    ;;
esac
