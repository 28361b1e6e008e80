#!/usr/bin/env bash
# Action step: the cache key of the rig's cargo target directory: the
# toolchain and Cargo.lock (the dependencies are what takes long to build;
# the rig's own crates rebuild from the restored target in seconds).
set -euo pipefail
toolchain=$(rustc -vV | sha256sum | cut -c1-12)
lock=$(sha256sum "${GITHUB_ACTION_PATH:?}/Cargo.lock" | cut -c1-12)
prefix="rig-target-${RUNNER_OS:-Linux}-${RUNNER_ARCH:-X64}-$toolchain-"
echo "key=$prefix$lock" >>"$GITHUB_OUTPUT"
echo "restore-key=$prefix" >>"$GITHUB_OUTPUT"
