#!/usr/bin/env bash
# The README's quick start, command 1 verbatim, on a fresh Debian 12 whose PID 1 is not systemd (like
# this CI machine, and containers): a minimal rootfs in systemd-nspawn without --boot, with no sudo and
# no Node.js, holding a checkout of the repository. The playbook must install Node.js itself (the local
# inventory takes it from the npm registry), build the release there, find the service manager that is
# there (sysvinit scripts), bring everything up, and the sample must then be delivered.
# Contained, so `npm test` never provisions the machine it runs on; in its own network namespace on a
# bridge this test creates (lib.sh, "private networking"), so it needs none of the host's ports.
#
# Needs root, debootstrap, systemd-container, iproute2, curl, node, git.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${POSTBACK_E2E_DIR:-$REPO/.cache/system}
# shellcheck source=lib.sh
. "$REPO/test/system/lib.sh"
ROOT=$W/quickstart-root

cleanup() {
  local rc=$?
  kill "${RECV_PID:-0}" "${PROXY_PID:-0}" 2>/dev/null || true
  net_destroy
  rm -rf "$ROOT"
  exit $rc
}
trap cleanup EXIT

ensure_rootfs
net_create
ADDR=$(net_address 1) PARTNER=$NET_HOST
start_egress_proxy
step "network: bridge $NET_BR, the container at $ADDR, the host at $NET_HOST (proxy for apt and npm $PROXY_URL)"

step "unpacking a fresh rootfs (no sudo, no Node.js) with a checkout"
unpack_rootfs "$ROOT"
prepare_rootfs "$ROOT" quickstart
! chroot "$ROOT" sh -c 'command -v sudo || command -v node || command -v npm' >/dev/null || fail "the rootfs has sudo or Node.js"
mkdir -p "$ROOT/root/postback"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) | tar -C "$ROOT/root/postback" -xf -
# The partner is at $PARTNER (the host, on the test's bridge), which the destination policy refuses by
# default: allow it in the local inventory, as the README tells a user whose partner is on their LAN.
local_vars=$ROOT/root/postback/ansible/inventories/local/group_vars/all/main.yml
sed -i "s|^app_delivery_allow_networks: .*|app_delivery_allow_networks: \"$PARTNER/32\"|" "$local_vars"
grep -qx "app_delivery_allow_networks: \"$PARTNER/32\"" "$local_vars" || fail "no app_delivery_allow_networks line in the local inventory"

start_receiver "$NET_HOST"

cmd=$(awk '/^# 1\./ { getline; print; exit }' "$REPO/README.md")
[ -n "$cmd" ] || fail "no quick-start command 1 in README.md"
echo "README command 1: $cmd"
sample="{\"endpoint\":{\"method\":\"GET\",\"url\":\"http://$PARTNER:$RECV_PORT/data?key={key}&value={value}&foo={bar}\"},\"data\":[{\"key\":\"Azureus\",\"value\":\"Dendrobates\"},{\"key\":\"Phyllobates\",\"value\":\"Terribilis\"}]}"
printf '%s' "$sample" > "$ROOT/root/sample.json"

# Inside: PID 1 is this script's shell, not systemd. Provision, then POST the sample through nginx and
# wait (the container's processes end with it) until the host's endpoint has both postbacks.
step "running it in a container without systemd"
cat > "$ROOT/root/quickstart.sh" <<IN
set -e
ip addr add $ADDR/24 dev host0 && ip link set host0 up && ip link set lo up
# This sandbox's way out (harness): apt, npm and the Node.js download go through the test's proxy,
# and Node trusts the sandbox's TLS egress CA.
export http_proxy=$PROXY_URL https_proxy=$PROXY_URL no_proxy=localhost,127.0.0.1,$NET_PREFIX.0/24
export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
export DEBIAN_FRONTEND=noninteractive
# Where each minute goes (printed below), from Ansible's own timer.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks
cd /root/postback
start=\$(date +%s)
{ $cmd ; } > /root/playbook.log 2>&1 || { tail -40 /root/playbook.log; exit 1; }
echo "command 1 took \$((\$(date +%s) - start)) s; the slowest tasks:"
grep -E ' -+ [0-9.]+s\$' /root/playbook.log | head -8
grep -E 'localhost +: ok=' /root/playbook.log
echo "node: \$(command -v node) \$(node --version)"
test -x /etc/init.d/pm2-postback && ls /etc/rc2.d | grep -q 'S[0-9]*pm2-postback' || { echo "pm2 is not started at boot (sysvinit)"; exit 1; }
code=\$(curl -sS -o /dev/null -w '%{http_code}' -d @/root/sample.json http://localhost/i)
[ "\$code" = 202 ] || { echo "POST /i answered \$code"; exit 1; }
code=\$(curl -sS -o /dev/null -w '%{http_code}' -d @/root/sample.json http://localhost/ingest.php)
[ "\$code" = 202 ] || { echo "POST /ingest.php answered \$code"; exit 1; }
for i in \$(seq 120); do
  [ "\$(grep -c 'GET /data?key=Phyllobates&value=Terribilis&foo=\$' /e2e/received.log)" -ge 2 ] && exit 0
  sleep 0.5
done
echo "the sample was not delivered"; tail -20 /var/log/postback/*.log; exit 1
IN
# shellcheck disable=SC2046
# The release is built in there (the controller is the same box): npm's download cache is kept on the host.
mkdir -p "$W/npm-cache"
systemd-nspawn -q -D "$ROOT" --machine="pbqs-${NET_PREFIX##*.}" --register=no --keep-unit --network-bridge="$NET_BR" $(container_args) --bind="$W:/e2e" \
  --bind="$W/npm-cache:/root/.npm" bash /root/quickstart.sh \
  || fail "the quick start in a container without systemd"
[ "$(received 'GET /data?key=Azureus&value=Dendrobates&foo=$')" -ge 2 ] || fail "Azureus was not delivered"
step "quick start e2e passed"
