#!/usr/bin/env bash
# Prints the GitHub Actions outputs of the `kernels` job: the catalog as the
# JSON include-list of the per-kernel matrix, and the ISO week that keys the
# kernel and chroot caches. Usage: ci/list-kernels.sh >> "$GITHUB_OUTPUT"
set -euo pipefail
cd "$(dirname "$0")/.."
rig=${RIG:-target/release/rig}
[ -x "$rig" ] || cargo build --release -q -p rig
echo "kernels=$("$rig" matrix --list --json ${RIG_KERNELS:+--kernel "$RIG_KERNELS"})"
echo "week=$(date -u +%G-W%V)"
