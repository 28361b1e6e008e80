#!/usr/bin/env bash
# Makes /dev/kvm usable by the runner's user where the machine has KVM (as
# drgn's and virtme-ng's workflows do); the rig then checks that KVM really
# runs the guest and falls back to TCG otherwise. Idempotent; a no-op
# without /dev/kvm or without udev (a container).
set -euo pipefail
if [ ! -e /dev/kvm ]; then
    echo "enable-kvm: no /dev/kvm on this machine: the rig will use TCG"
    exit 0
fi
if ! command -v udevadm >/dev/null || [ ! -d /etc/udev/rules.d ]; then
    echo "enable-kvm: no udev on this machine: /dev/kvm left as it is ($(ls -l /dev/kvm))"
    exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' |
    $sudo tee /etc/udev/rules.d/99-rig-kvm.rules >/dev/null
$sudo udevadm control --reload-rules
$sudo udevadm trigger --name-match=kvm
ls -l /dev/kvm
