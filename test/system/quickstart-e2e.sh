#!/usr/bin/env bash
# The README's quick start, command 1 verbatim, on a Debian 12 whose PID 1 is not systemd (like this CI
# machine, and containers): a fresh rootfs in systemd-nspawn without --boot, holding a checkout of the
# repository and a Node.js (as a developer's machine would). The playbook must find the service manager
# that is there (sysvinit scripts), bring everything up, and the sample must then be delivered.
# Contained, so `npm test` never provisions the machine it runs on.
#
# Needs root, debootstrap, systemd-container, curl, node, git; ports 80, 2812 and 6379 free on the host.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${POSTBACK_E2E_DIR:-$REPO/.cache/system}
SSH_PORT=0 BASE_URL=http://127.0.0.1 PARTNER=127.0.0.1
# shellcheck source=lib.sh
. "$REPO/test/system/lib.sh"
ROOT=$W/quickstart-root

require_free_ports 80 2812 6379

ensure_rootfs
ensure_node_tarball

step "unpacking a fresh rootfs with a checkout and Node.js 24"
rm -rf "$ROOT"; mkdir -p "$ROOT"; tar -C "$ROOT" -xf "$W/rootfs.tar"
prepare_rootfs "$ROOT" quickstart
tar -C "$ROOT/usr/local" --strip-components=1 -xzf "$NODE_TGZ"
# npm under /usr/local reads /usr/local/etc/npmrc: this sandbox's TLS egress CA (harness, not playbook)
mkdir -p "$ROOT/usr/local/etc"; echo 'cafile=/etc/ssl/certs/ca-certificates.crt' > "$ROOT/usr/local/etc/npmrc"
mkdir -p "$ROOT/root/postback"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) | tar -C "$ROOT/root/postback" -xf -

start_receiver
cleanup() {
  local rc=$?
  kill "${RECV_PID:-0}" 2>/dev/null || true
  rm -rf "$ROOT"
  exit $rc
}
trap cleanup EXIT

# The partner is at $PARTNER, which the destination policy refuses by default: allow it in the local
# inventory, as the README tells a user whose partner is on their LAN or on the same machine.
local_vars=$ROOT/root/postback/ansible/inventories/local/group_vars/all/main.yml
sed -i "s|^app_delivery_allow_networks: .*|app_delivery_allow_networks: \"$PARTNER/32\"|" "$local_vars"
grep -qx "app_delivery_allow_networks: \"$PARTNER/32\"" "$local_vars" || fail "no app_delivery_allow_networks line in the local inventory"

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
export DEBIAN_FRONTEND=noninteractive
cd /root/postback
$cmd > /root/playbook.log 2>&1 || { tail -40 /root/playbook.log; exit 1; }
grep -E 'localhost +: ok=' /root/playbook.log
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
systemd-nspawn -q -D "$ROOT" --register=no --keep-unit --bind="$W:/e2e" bash /root/quickstart.sh \
  || fail "the quick start in a container without systemd"
[ "$(received 'GET /data?key=Azureus&value=Dendrobates&foo=$')" -ge 2 ] || fail "Azureus was not delivered"
step "quick start e2e passed"
