# The rig: top-level entry points. `make run` and `make test` are the two
# commands of the README's Quick start; `.ci/run` calls `make test`.

CARGO        ?= cargo
GUEST_TARGET := x86_64-unknown-linux-gnu
GUEST_BIN    := target/$(GUEST_TARGET)/release/rig-guest
RIG          := target/release/rig
RIG_ARGS     ?=

.PHONY: all setup guest rig run test unit kmod clean

all: rig guest

# System packages (QEMU >= 10, busybox-static, ...). Idempotent.
setup:
	bash ci/setup-host.sh

# Guest programs, linked statically against glibc (the initramfs has no libc).
# An explicit --target keeps these flags away from the host build.
guest:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p rig-guest --target $(GUEST_TARGET)

rig:
	$(CARGO) build --release -p rig

# README command 1: set up, then run the reference suite on the default kernel.
run: setup guest rig
	$(RIG) run $(RIG_ARGS)

# README command 2: set up, then every test (unit, ABI, real boots under TCG/KVM).
test: setup guest
	$(CARGO) test --release --workspace

clean:
	$(CARGO) clean
