#!/usr/bin/env bash
# The appliance in a real virtual machine: the nspawn test's Debian 12 rootfs plus Debian's kernel, as an
# ext4 disk image booted by qemu under software emulation (no KVM here). Provisioned over ssh by
# ansible/site.yml, then:
#   - a second run changes nothing; live settings as in the nspawn test;
#   - the brief's sample POSTed to /i and /ingest.php through nginx arrives at a test endpoint;
#   - 500 postbacks queued with the workers stopped survive a reboot of the VM and are delivered;
#   - 500 more survive a power cut (kill -9 of qemu) and a cold boot, and are delivered.
# It is the only test of a real kernel boot, fstab and network setup. Slow (about 40 minutes on a
# 2-core machine): run it before a release, not in every CI run:
#   sudo bash test/system/qemu-e2e.sh
# Needs root, qemu-system-x86, debootstrap, systemd-container (to install the kernel into the image),
# ansible, curl, node; host ports 2223 and 8080 free.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${POSTBACK_E2E_DIR:-$REPO/.cache/system}
SSH_PORT=2223
BASE_URL=http://127.0.0.1:8080
PARTNER=10.0.2.2  # the host, as qemu's user-mode network shows it to the guest
# shellcheck source=lib.sh
. "$REPO/test/system/lib.sh"
VM=$W/vm
mkdir -p "$VM"

ensure_rootfs
ensure_node_tarball

# ---------------------------------------------------------------- the disk image
step "building the VM image (rootfs + kernel)"
VR=$VM/root
unpack_rootfs "$VR"
prepare_rootfs "$VR" appliance-vm
systemd-nspawn -q -D "$VR" --register=no --keep-unit sh -c \
  'apt-get update -qq && apt-get install -y -qq --no-install-recommends linux-image-amd64 initramfs-tools ifupdown isc-dhcp-client curl >/dev/null 2>&1' \
  || fail "installing the kernel into the image"
echo '/dev/vda / ext4 defaults 0 1' > "$VR/etc/fstab"
printf 'auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet dhcp\n' > "$VR/etc/network/interfaces"
cp "$VR"/boot/vmlinuz-* "$VM/vmlinuz"; cp "$VR"/boot/initrd.img-* "$VM/initrd.img"
rm -f "$VM/vm.img"; mkfs.ext4 -q -F -L root -d "$VR" "$VM/vm.img" 6G
rm -rf "$VR"

start_receiver
write_inventory

boot() {  # a guest reboot resets in-process; a guest poweroff exits qemu
  qemu-system-x86_64 -accel tcg,thread=multi -cpu max -machine q35 -smp 2 -m 2048 \
    -kernel "$VM/vmlinuz" -initrd "$VM/initrd.img" -append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
    -drive file="$VM/vm.img",format=raw,if=virtio,cache=writeback \
    -nic user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22,hostfwd=tcp:127.0.0.1:8080-:80 \
    -display none -serial file:"$VM/serial-$(date +%s).log" -monitor none > "$VM/qemu.log" 2>&1 &
  QPID=$!
}
wait_up() {
  local end=$((SECONDS + ${1:-400}))
  until S 'systemctl is-system-running --wait >/dev/null 2>&1; true' 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "the VM did not come up"
    kill -0 "$QPID" 2>/dev/null || fail "qemu exited"
    sleep 2
  done
}
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    S 'systemctl --no-pager --failed; /usr/local/bin/postback-pm2 ls; tail -n 20 /var/log/postback/*.log; monit summary' >&2 2>&1 || true
  fi
  if kill -0 "${QPID:-0}" 2>/dev/null; then
    S systemctl poweroff 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$QPID" 2>/dev/null || break; sleep 1; done
    kill -9 "$QPID" 2>/dev/null || true
  fi
  kill "${RECV_PID:-0}" 2>/dev/null || true
  exit $rc
}
trap cleanup EXIT

step "booting the VM"
boot; wait_up
provision_twice
check_live_settings
check_sample

step "queueing 500 postbacks with the workers stopped, then rebooting the VM"
queue_with_workers_stopped reboot
t=$SECONDS
S 'systemctl reboot' || true
sleep 10; wait_up
step "back after $((SECONDS - t))s; waiting for the 500"
wait_received 'tag=reboot' 500 300
step "all 500 delivered after the reboot"

step "queueing 500 more, then a power cut (kill -9 of qemu)"
queue_with_workers_stopped power
sleep 1.5  # appendfsync everysec: the AOF reaches the disk within a second
kill -9 "$QPID"; wait "$QPID" 2>/dev/null || true
t=$SECONDS
boot; wait_up
step "cold boot took $((SECONDS - t))s; waiting for the 500"
wait_received 'tag=power' 500 300
step "all 500 delivered after the power cut"
check_live_settings
step "qemu e2e passed"
