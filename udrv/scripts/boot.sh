#!/bin/bash
# QEMU's option values are comma-separated lists, not array mistakes.
# shellcheck disable=SC2054
# Boots one bare QEMU guest that runs one rig-udrv subcommand against a
# device bound to vfio-pci, and says whether it passed. These scripts are
# the verification of rig-udrv until the rig's own [[device]] support
# replaces them; they reproduce by hand what the rig will do.
#
#   udrv/scripts/boot.sh KERNEL TEST [OUTDIR]
#
# KERNEL: a directory name under ~/.cache/rig/kernels (bookworm-6.1, ...).
# TEST:   edu | nvme | ivshmem (rig-udrv's subcommands), or udrv-edu (the
#         standalone example in examples/udrv-edu, built there).
# OUTDIR: where console.log, qemu.cmdline and the initramfs go
#         (default: a new directory under /tmp).
#
# Needs: target/x86_64-unknown-linux-gnu/release/rig-udrv (static) and, for
# ivshmem, target/release/examples/ivshmem-host (see udrv/README.md).
set -euo pipefail

kernel=${1:?usage: boot.sh KERNEL edu|nvme|ivshmem [OUTDIR]}
test=${2:?usage: boot.sh KERNEL edu|nvme|ivshmem [OUTDIR]}
out=${3:-$(mktemp -d "/tmp/udrv-$kernel-$test.XXXXXX")}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
udrv=$top/target/x86_64-unknown-linux-gnu/release/rig-udrv
host=$top/target/release/examples/ivshmem-host
root=${RIG_KERNELS:-$HOME/.cache/rig/kernels}/$kernel/root
busybox=${BUSYBOX:-/bin/busybox}

die() { echo "boot.sh: $*" >&2; exit 2; }
[ -x "$udrv" ] || die "build rig-udrv first (see udrv/README.md)"
[ -d "$root" ] || die "no kernel $kernel under ${root%/root} (rig fetch $kernel)"

# The kernel image: /boot/vmlinuz-* (classic) or vmlinuz.unsigned (sid's split packages).
shopt -s nullglob
images=("$root"/boot/vmlinuz-* "$root"/usr/lib/modules/*/vmlinuz.unsigned)
moddirs=("$root"/lib/modules/*/kernel "$root"/usr/lib/modules/*/kernel)
shopt -u nullglob
if [ ${#images[@]} -eq 0 ] || [ ${#moddirs[@]} -eq 0 ]; then
	die "no vmlinuz or modules in $root"
fi
vmlinuz=${images[0]}
moddir=${moddirs[0]%/kernel}

# Per test: the device's PCI ID, its QEMU arguments, the driver's command.
seed=0x5eed
extra=
pass_line="^PASS $test:"
case $test in
edu)
	id=1234:11e8
	dev_args=(-device edu,addr=04.0)
	cmd="rig-udrv edu --device \$BDF --seed $seed"
	;;
udrv-edu)
	id=1234:11e8
	extra=$top/examples/udrv-edu/target/x86_64-unknown-linux-gnu/release/udrv-edu
	[ -x "$extra" ] || die "build examples/udrv-edu first (see its README.md)"
	dev_args=(-device edu,addr=04.0)
	cmd="udrv-edu --device \$BDF"
	pass_line="^udrv-edu: all checks passed"
	;;
nvme)
	id=1b36:0010
	size=$((16 << 20))
	# The namespace: the pattern in the first 4 KiB, zeros after.
	"$udrv" pattern --seed "$seed" --len 4096 >"$out/nvme.img"
	truncate -s "$size" "$out/nvme.img"
	dev_args=(-drive "file=$out/nvme.img,if=none,id=nvm0,format=raw"
		-device nvme,serial=rigudrv0,drive=nvm0,addr=05.0)
	cmd="rig-udrv nvme --device \$BDF --size $size --seed $seed"
	;;
ivshmem)
	id=1af4:1110
	[ -x "$host" ] || die "build the ivshmem-host example first (see udrv/README.md)"
	dev_args=(-chardev "socket,id=ivsh0,path={socket}"
		-device ivshmem-doorbell,chardev=ivsh0,vectors=2,addr=06.0)
	cmd="rig-udrv ivshmem --device \$BDF --count 24 --seed $seed --timeout 90 --ready-file /run-ready"
	;;
*) die "unknown test $test (edu, nvme, ivshmem, udrv-edu)" ;;
esac

# ---- initramfs -------------------------------------------------------------
stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage"/{bin,dev,proc,sys,lib/modules}
cp "$busybox" "$stage/bin/busybox"
cp "$udrv" "$stage/bin/rig-udrv"
[ -z "$extra" ] || cp "$extra" "$stage/bin/"
mknod "$stage/dev/console" c 5 1

# In-tree modules: vfio-pci and the type1 IOMMU backend, dependencies
# first, read from each module's .modinfo (Debian ships no modules.dep),
# unpacked on the host (6.12 and 7.x ship .ko.xz).
declare -A modpath done_mod
while IFS= read -r f; do
	b=$(basename "$f")
	b=${b%%.ko*}
	modpath[${b//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst')
order=()
add_module() {
	local n=${1//-/_} f dep
	[ -n "${done_mod[$n]:-}" ] && return
	done_mod[$n]=1
	f=${modpath[$n]:-}
	[ -n "$f" ] || die "module $n is not in $moddir (built in?)"
	case $f in
	*.xz) xz -dc "$f" ;;
	*.zst) zstd -dc "$f" ;;
	*) cat "$f" ;;
	esac >"$stage/lib/modules/$n.ko"
	for dep in $(tr '\0' '\n' <"$stage/lib/modules/$n.ko" | grep -a -m1 '^depends=' | cut -d= -f2 | tr ',' ' '); do
		add_module "$dep"
	done
	order+=("$n")
}
add_module vfio_pci
add_module vfio_iommu_type1
echo "${order[*]}" >"$stage/modules"

cat >"$stage/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "udrv: init at \$(cut -d' ' -f1 /proc/uptime) s"
for m in \$(cat /modules); do
	insmod /lib/modules/\$m.ko || echo "udrv: insmod \$m failed"
done
# The device, found by its PCI ID.
BDF=
for d in /sys/bus/pci/devices/*; do
	[ "\$(cat \$d/vendor):\$(cat \$d/device)" = "0x${id%%:*}:0x${id##*:}" ] && BDF=\${d##*/}
done
echo "udrv: device $id at \$BDF, driver \$(basename \$(readlink /sys/bus/pci/devices/\$BDF/driver) 2>/dev/null), group \$(basename \$(readlink /sys/bus/pci/devices/\$BDF/iommu_group))"
# Bind to vfio-pci: override, unbind from the built-in driver if any, probe.
echo vfio-pci >/sys/bus/pci/devices/\$BDF/driver_override
[ -e /sys/bus/pci/devices/\$BDF/driver ] && echo \$BDF >/sys/bus/pci/devices/\$BDF/driver/unbind
echo \$BDF >/sys/bus/pci/drivers_probe
echo "udrv: bound to \$(basename \$(readlink /sys/bus/pci/devices/\$BDF/driver)), /dev/vfio: \$(ls /dev/vfio | tr '\n' ' ')"
start=\$(cut -d' ' -f1 /proc/uptime)
$cmd
echo "udrv: exit \$? after \$start s, now \$(cut -d' ' -f1 /proc/uptime) s"
poweroff -f
EOF
chmod +x "$stage/init"
(cd "$stage" && find . | cpio -o -H newc --quiet) >"$out/initramfs.cpio"

# ---- QEMU ------------------------------------------------------------------
# intel-iommu first: it must exist before the devices it translates.
# kernel-irqchip=split is what intremap=on needs (under KVM; harmless here).
qemu=(qemu-system-x86_64 -accel tcg -machine q35,kernel-irqchip=split
	-device intel-iommu,intremap=on
	-m 512 -smp 1 -nodefaults -display none -no-reboot
	-serial "file:$out/console.log"
	-kernel "$vmlinuz" -initrd "$out/initramfs.cpio"
	-append "console=ttyS0 intel_iommu=on panic=-1"
	"${dev_args[@]}")
printf '%q ' "${qemu[@]}" >"$out/qemu.cmdline"
echo >>"$out/qemu.cmdline"

t0=$(date +%s.%N)
if [ "$test" = ivshmem ]; then
	"$host" --dir "$out" --count 24 --batch 8 --seed "$seed" --timeout 150 -- "${qemu[@]}" >"$out/host.log" 2>&1 || true
else
	timeout 180 "${qemu[@]}" >"$out/qemu.log" 2>&1 || true
fi
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)

verdict=FAIL
if grep -q "$pass_line" "$out/console.log" && grep -q "^udrv: exit 0" "$out/console.log"; then
	verdict=PASS
fi
if [ "$test" = ivshmem ] && ! grep -q "^host PASS" "$out/host.log"; then
	verdict=FAIL
fi
grep -a -E "^(ok|FAIL|note|PASS|udrv|Error)|DMAR: \[|rig-udrv|Kernel panic" "$out/console.log" | tr -d '\r' || true
[ "$test" = ivshmem ] && cat "$out/host.log"
printf '%s %s %s %.1fs %s\n' "$verdict" "$kernel" "$test" "$secs" "$out"
[ $verdict = PASS ]
