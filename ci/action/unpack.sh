#!/usr/bin/env bash
# Action step: unpacks the restored rig cache. When it came from an older
# key (last week's, or other inputs: cache-hit `false`), asks Debian for
# newer packages of each kernel (downloaded only if the version moved); a
# cold start (no cache) downloads the current ones anyway.
# Env: CACHE_TAR, CACHE_HIT, KERNELS.
set -euo pipefail
action=${GITHUB_ACTION_PATH:?}
rig=$action/target/release/rig
cache=${RIG_CACHE_DIR:?}
if [ -f "${CACHE_TAR:?}" ]; then
    bash "$action/ci/cache-tar.sh" restore "$cache" "$CACHE_TAR"
    rm -f "$CACHE_TAR"
else
    echo "rig action: no rig cache was restored: kernels are downloaded and build chroots created as needed"
fi
if [ "${CACHE_HIT:-}" = false ]; then
    IFS=, read -ra kernels <<<"${KERNELS:?}"
    for k in "${kernels[@]}"; do
        "$rig" fetch "$k" --update || echo "rig action: could not refresh $k; the run uses what is cached"
    done
fi
"$rig" cache | tail -1
