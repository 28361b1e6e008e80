#!/usr/bin/env bash
# Action step: runs the suite with `rig matrix` (one or many kernels; KTAP,
# JUnit XML and logs per kernel in RESULTS) and adds its Markdown summary
# to the job summary. The rig annotates each failing step on its line in
# the config itself (it sees GITHUB_ACTIONS=true). Never fails itself, so
# the cache and the results are still saved: the Verdict step does.
# Env: CONFIG, KERNELS, RESULTS, ARGS.
set -euo pipefail
rig=${GITHUB_ACTION_PATH:?}/target/release/rig
cd "${GITHUB_WORKSPACE:?}"
read -ra extra <<<"${ARGS:-}"
status=0
"$rig" matrix -c "${CONFIG:-rig.toml}" --kernel "${KERNELS:?}" --out-dir "${RESULTS:?}" \
    --markdown "$RESULTS/summary.md" "${extra[@]}" || status=$?
{
    echo "exit-code=$status"
    if [ "$status" = 0 ]; then echo "passed=true"; else echo "passed=false"; fi
    delim="rig-junit-$RANDOM$RANDOM"
    echo "junit<<$delim"
    find "$RESULTS" -maxdepth 1 -name '*.junit.xml' | sort
    echo "$delim"
} >>"$GITHUB_OUTPUT"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    if [ -f "$RESULTS/summary.md" ]; then
        cat "$RESULTS/summary.md" >>"$GITHUB_STEP_SUMMARY"
    else
        # The rig stopped before any kernel ran (a configuration error, exit 2).
        echo "### ❌ rig: no results on $KERNELS (exit $status): see the log of the step \"Run the suite\"" >>"$GITHUB_STEP_SUMMARY"
    fi
fi
