# The rig: top-level entry points. `make run` and `make test` are the two
# commands of the README's Quick start; `.ci/run` calls `make test`.

CARGO        ?= cargo
GUEST_TARGET := x86_64-unknown-linux-gnu
GUEST_BIN    := target/$(GUEST_TARGET)/release/rig-guest
RIG          := target/release/rig
RIG_ARGS     ?=

.PHONY: all setup guest rig run test unit kmod fresh-host clean matrix boots apidiff fuzz dpdk lint-workflows

all: rig guest

# System packages (QEMU >= 10, busybox-static, ...). Idempotent.
setup:
	bash ci/setup-host.sh

# Guest programs, linked statically against glibc (the initramfs has no libc):
# rig-guest (the module's tests) and rig-udrv (the reference userspace driver).
# An explicit --target keeps these flags away from the host build. Then
# rig-udrv dynamically linked (target/release/rig-udrv), as udrv/debian.toml
# runs it in a Debian root.
guest:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p rig-guest -p rig-udrv --target $(GUEST_TARGET)
	$(CARGO) build --release -p rig-udrv

rig:
	$(CARGO) build --release -p rig

# README command 1: set up, then run the reference suite on the default kernel.
run: setup guest rig
	$(RIG) run $(RIG_ARGS)

# README command 2: set up, then every test (unit, ABI, real boots under TCG/KVM).
test: setup guest lint-workflows
	$(CARGO) test --release --workspace

# The kernel matrix (README "Kernel matrix"): the suite on every catalog
# kernel, as many guests at once as there are CPUs; output in rig-matrix/.
matrix: setup guest rig
	$(RIG) matrix $(RIG_ARGS)

# Boot reliability figures: 50 boots per kernel, two at a time (boots.json).
boots: setup guest rig
	$(RIG) boots --boots 50 --parallel 2 $(RIG_ARGS)

# The fuzz suite at full length (docs/fuzz.md): 1,000,000 operations per
# catalog kernel, one guest at a time, every check the kernel can do; the
# figures of each kernel from rig-fuzz.json. (make test runs 20 s of it.)
fuzz: setup guest rig
	$(RIG) run -c guest-kmod/fuzz.toml --json rig-fuzz.json $(RIG_ARGS); status=$$?; \
	grep -o '"kernel": "[^"]*"\|total  *[0-9][^\\]*' rig-fuzz.json; exit $$status

# DPDK's testpmd on QEMU's igb through VFIO in a Debian root, TX and RX
# counted by the host (examples/dpdk-igb/README.md), on every catalog kernel.
# The first run builds one root per suite (about 4 minutes each).
dpdk: setup guest rig
	$(RIG) run -c examples/dpdk-igb/rig.toml --kernel all $(RIG_ARGS)

# The 2.6-era API breaks by real builds; refreshes docs/api-changes.md's table.
apidiff: setup rig
	$(RIG) apidiff --write-doc docs/api-changes.md $(RIG_ARGS)

# The fast tier, no boots (under a minute once built): the library's unit
# tests, the verdict classifier on its fixtures, the one-way stage layout,
# and the ABI mirror against the C header.
unit:
	$(CARGO) test --release -p rig -p rig-abi --lib --test classify --test layout --test abi_agrees

# The reference module built for the default kernel (nothing booted), then
# checkpatch on its sources (ci/checkpatch.sh; CHECKPATCH=path/to/checkpatch.pl
# or it is taken once from Debian's linux-source package).
kmod: setup rig
	$(RIG) build -c guest-kmod/rig.toml $(RIG_ARGS)
	bash ci/checkpatch.sh guest-kmod

# ci/setup-host.sh on a fresh debootstrap'd Debian 12 in a chroot (root;
# also part of `make test` through rig/tests/fresh_host.rs).
fresh-host:
	bash ci/fresh-host.sh

# actionlint on .github/workflows (shellcheck on ci/*.sh when installed).
lint-workflows:
	bash ci/lint-workflows.sh

clean:
	$(CARGO) clean
