#!/usr/bin/env bash
# One CI job of the kernel matrix: builds the rig and the guest programs,
# runs the reference suite on one kernel (or a comma list, or `all`) and
# leaves KTAP, JUnit XML and console logs in the output directory. The
# table goes to the job summary on GitHub. Exit status is rig's.
#   ci/matrix-job.sh <kernel> [out dir]
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=${1:?kernel name, comma list or all} out=${2:-rig-matrix}
bash ci/setup-host.sh
make guest rig
status=0
target/release/rig matrix --kernel "$kernel" --out-dir "$out" || status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$out/table.txt" ]; then
    { echo "### rig matrix: $kernel"; echo '```'; cat "$out/table.txt"; echo '```'; } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
