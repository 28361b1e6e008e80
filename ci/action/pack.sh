#!/usr/bin/env bash
# Action step: prunes the rig cache to CACHE_SIZE (least recently used
# first; nothing else runs now, so what this run used may go too if the
# bound is that tight) and packs it, chroots included, into CACHE_TAR.
# Env: CACHE_SIZE, CACHE_TAR.
set -euo pipefail
action=${GITHUB_ACTION_PATH:?}
cache=${RIG_CACHE_DIR:?}
# Saved boots are keyed by this build of the rig, and a boot is 2-4 s to
# make again: they do not go into the CI cache or count against its bound.
rm -rf "$cache/boots"
"$action/target/release/rig" cache --max-size "${CACHE_SIZE:?}" --keep-recent 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
bytes=$($sudo du -sB1 "$cache" | cut -f1)
echo "cache-bytes=$bytes" >>"$GITHUB_OUTPUT"
bash "$action/ci/cache-tar.sh" save "$cache" "${CACHE_TAR:?}"
