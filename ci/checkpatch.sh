#!/usr/bin/env bash
# Runs the kernel's checkpatch.pl (--no-tree -f) on every .c and .h of a
# module directory and fails on any error or warning. compat.h may use
# LINUX_VERSION_CODE: it is the one place version checks live.
#   ci/checkpatch.sh [module dir]     (default: guest-kmod)
# checkpatch.pl is $CHECKPATCH, else checkpatch.pl on PATH, else taken
# once from Debian's linux-source-6.1 package (apt-get download, about
# 140 MB; nothing installed) into <cache>/checkpatch/ (RIG_CACHE_DIR or
# ~/.cache/rig).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-guest-kmod}

checkpatch=${CHECKPATCH:-$(command -v checkpatch.pl || true)}
if [ -z "$checkpatch" ]; then
    cache=${RIG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rig}/checkpatch
    checkpatch=$cache/scripts/checkpatch.pl
    if [ ! -f "$checkpatch" ]; then
        # 6.1's checkpatch is the project's reference (its C is clean under
        # it); another linux-source only where 6.1 is not in apt.
        pkg=$(apt-cache search --names-only '^linux-source-[0-9.]+$' | awk '{print $1}' | sort -V)
        if echo "$pkg" | grep -qx linux-source-6.1; then pkg=linux-source-6.1; else pkg=$(echo "$pkg" | tail -1); fi
        if [ -z "$pkg" ]; then
            echo "checkpatch: no checkpatch.pl (set CHECKPATCH) and no linux-source package in apt to take it from" >&2
            exit 3
        fi
        echo "checkpatch: taking scripts/checkpatch.pl from $pkg (once; into $cache)"
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        sandbox=()
        # As root apt downloads as _apt, which cannot write into a 0700 temp dir.
        [ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
        (cd "$tmp" && apt-get download -q "${sandbox[@]}" "$pkg" >/dev/null)
        mkdir -p "$cache"
        # The package holds the source as a tarball; only three files are needed.
        dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -xO --wildcards './usr/src/linux-source-*.tar.*' |
            tar -xJ -C "$cache" --strip-components=1 --wildcards \
                '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'
    fi
fi

failed=0
while IFS= read -r f; do
    ignore=()
    [ "$(basename "$f")" != compat.h ] || ignore=(--ignore LINUX_VERSION_CODE)
    if ! perl "$checkpatch" --no-tree --quiet --show-types "${ignore[@]}" -f "$f"; then
        failed=1
    fi
done < <(find "$dir" -name '*.[ch]' -not -name '*.mod.c' | sort)
if [ "$failed" = 0 ]; then
    echo "checkpatch: $dir is clean ($(find "$dir" -name '*.[ch]' -not -name '*.mod.c' | wc -l) files)"
fi
exit "$failed"
