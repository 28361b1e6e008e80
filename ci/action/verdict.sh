#!/usr/bin/env bash
# Action step: the job's result is rig's exit status.
# Env: EXIT_CODE, KERNELS.
set -euo pipefail
code=${EXIT_CODE:-3}
case $code in
0) echo "rig: PASS on ${KERNELS:-}" ;;
1) echo "rig: a check failed on ${KERNELS:-}: see the log above and the uploaded artifact (KTAP, JUnit XML, console logs)" ;;
2) echo "rig: configuration error (exit 2): see the log above" ;;
*) echo "rig: the rig could not run (exit $code): see the log above" ;;
esac
exit "$code"
