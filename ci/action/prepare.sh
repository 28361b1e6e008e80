#!/usr/bin/env bash
# Action step: resolves the kernels (the input, else the config's, else the
# catalog) and keys the rig cache. The key is
#   rig-cache-v1-<os>-<arch>-<kernels>-<ISO week>-<hash>
# <kernels> names the suites too (catalog names and SUITE/FLAVOUR do); the
# week makes a newer Debian kernel arrive at most a week late; <hash> covers
# what decides the cached trees: the kernel catalog and the build chroots'
# package set. A miss restores the newest cache of the same kernels (this
# week's, else any), which is then refreshed, pruned and saved anew.
# Env: CONFIG, KERNELS, ARTIFACT_NAME.
set -euo pipefail
action=${GITHUB_ACTION_PATH:?}
rig=$action/target/release/rig
cd "${GITHUB_WORKSPACE:?}"
kernel_arg=()
[ -z "${KERNELS:-}" ] || kernel_arg=(--kernel "$KERNELS")
kernels=$("$rig" matrix --list -c "${CONFIG:-rig.toml}" "${kernel_arg[@]}" | paste -sd, -)
[ -n "$kernels" ] || { echo "::error title=rig action::no kernel to test"; exit 2; }
slug=$(printf '%s' "$kernels" | tr '/,' '_+')
if [ ${#slug} -gt 60 ]; then
    n=$(printf '%s' "$kernels" | tr ',' '\n' | wc -l)
    slug="$n-kernels-$(printf '%s' "$kernels" | sha256sum | cut -c1-8)"
fi
week=$(date -u +%G-W%V)
decides=$(cat "$action/images/kernels.toml" "$action/rig/src/build/chroot/mod.rs" | sha256sum | cut -c1-12)
base="rig-cache-v1-${RUNNER_OS:-Linux}-${RUNNER_ARCH:-X64}-$slug"
{
    echo "kernels=$kernels"
    echo "cache-key=$base-$week-$decides"
    echo "cache-restore-week=$base-$week-"
    echo "cache-restore-any=$base-"
    echo "cache-tar=${RUNNER_TEMP:?}/rig-cache.tar"
    echo "results-dir=$RUNNER_TEMP/rig-results"
    echo "artifact-name=${ARTIFACT_NAME:-rig-$slug}"
} >>"$GITHUB_OUTPUT"
echo "rig action: kernels $kernels; cache key $base-$week-$decides"
