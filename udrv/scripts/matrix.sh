#!/bin/bash
# Every rig-udrv subcommand on every catalog kernel, one guest at a time
# (the machines are small). Prints one summary line per boot and a table.
#
#   udrv/scripts/matrix.sh [OUTDIR] [KERNEL...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/udrv-matrix}
shift || true
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(bullseye-5.10 bookworm-6.1 trixie-6.12 sid-7)
tests=(edu ivshmem nvme)
# The standalone example too, when it has been built.
[ -x "$here/../../examples/udrv-edu/target/x86_64-unknown-linux-gnu/release/udrv-edu" ] && tests+=(udrv-edu)
mkdir -p "$out"
: >"$out/summary"
for k in "${kernels[@]}"; do
	for t in "${tests[@]}"; do
		rm -rf "${out:?}/$k-$t"
		"$here/boot.sh" "$k" "$t" "$out/$k-$t" >"$out/$k-$t.log" 2>&1
		tail -1 "$out/$k-$t.log" | tee -a "$out/summary"
	done
done
printf '\n%-14s' kernel
printf ' %-14s' "${tests[@]}"
echo
fail=0
for k in "${kernels[@]}"; do
	printf '%-14s' "$k"
	for t in "${tests[@]}"; do
		cell=$(awk -v k="$k" -v t="$t" '$2 == k && $3 == t { print $1 " " $4 }' "$out/summary")
		printf ' %-14s' "${cell:-missing}"
		case $cell in PASS*) ;; *) fail=1 ;; esac
	done
	echo
done
exit $fail
