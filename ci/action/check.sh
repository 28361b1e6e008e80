#!/usr/bin/env bash
# Action step 1: fails at once, saying what to set, when an input cannot
# work on this runner; exports the archive and the cache directory.
# Env: CONFIG, DEBIAN_ARCHIVE, CACHE_SIZE (the action's inputs).
set -euo pipefail
fail() {
    echo "::error title=rig action::$*"
    exit 2
}
cd "${GITHUB_WORKSPACE:?}"
config=${CONFIG:-rig.toml}
[ -f "$config" ] || fail "the config \`$config\` is not in the workspace ($GITHUB_WORKSPACE): check out your repository first (actions/checkout) and set the \`config\` input to your rig.toml"
# OS_RELEASE: a stand-in for /etc/os-release (rig/tests/action.rs plays an
# Ubuntu runner with it).
# shellcheck source=/dev/null
. "${OS_RELEASE:-/etc/os-release}"
if [ -n "${DEBIAN_ARCHIVE:-}" ]; then
    echo "RIG_DEBIAN_ARCHIVE=$DEBIAN_ARCHIVE" >>"$GITHUB_ENV"
elif [ "${ID:-}" != debian ]; then
    fail "this runner is ${PRETTY_NAME:-$ID}, whose apt sources are not Debian's: set the \`debian-archive\` input to a Debian archive URI (kernels and build chroots come from it), e.g. from a repository variable: \`debian-archive: \${{ vars.RIG_DEBIAN_ARCHIVE }}\`"
fi
size_re='^[0-9]+(\.[0-9]+)? *([KkMmGgTt](i?[Bb])?)?$'
[[ ${CACHE_SIZE:-} =~ $size_re ]] || fail "cache-size \`${CACHE_SIZE:-}\` is not a size: use e.g. 3G or 500M"
command -v cargo >/dev/null || fail "no Rust toolchain (cargo) on this runner: add \`uses: dtolnay/rust-toolchain@stable\` before this action"
echo "RIG_CACHE_DIR=${RIG_CACHE_DIR:-$HOME/.cache/rig}" >>"$GITHUB_ENV"
archive=${DEBIAN_ARCHIVE:-"the system's apt sources"}
echo "rig action: config $config, archive $archive, cache ${RIG_CACHE_DIR:-$HOME/.cache/rig} (at most $CACHE_SIZE)"
