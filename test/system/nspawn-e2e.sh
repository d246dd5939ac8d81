#!/usr/bin/env bash
# The appliance end to end in a real systemd host: a Debian 12 rootfs (debootstrap, cached) booted with
# systemd as PID 1 in systemd-nspawn, provisioned over ssh by ansible/site.yml, then:
#   - a second run changes nothing;
#   - live settings: Redis AOF/noeviction/password/loopback (CONFIG GET), services enabled, the app
#     running as its own user, the env file private, monit watching;
#   - the brief's sample POSTed to /i and /ingest.php through nginx arrives at a test endpoint;
#   - postbacks queued while the workers are stopped survive a reboot and a hard kill of the
#     container (kill -9 of its init), and are delivered afterwards;
#   - monit brings the apps back after the pm2 daemon and its workers are killed -9, and records an
#     alert naming the runbook.
# Prints timings; exits non-zero with the container's logs on any failure.
#
# Needs root, debootstrap, systemd-container, ansible, openssh-client, curl, node; ports 80, 2222,
# 2812 and 6379 free on the host (the container shares its network).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${POSTBACK_E2E_DIR:-$REPO/.cache/system}
SSH_PORT=2222
BASE_URL=http://127.0.0.1
PARTNER=127.0.0.1
# shellcheck source=lib.sh
. "$REPO/test/system/lib.sh"
NAME=postback-e2e
ROOT=$W/rootfs
LOG=$W/nspawn.log
: > "$LOG"

require_free_ports 80 2222 2812 6379

ensure_rootfs
ensure_node_tarball

step "unpacking a fresh rootfs"
rm -rf "$ROOT"; mkdir -p "$ROOT"; tar -C "$ROOT" -xf "$W/rootfs.tar"
prepare_rootfs "$ROOT" appliance
printf 'Port %s\nListenAddress 127.0.0.1\n' "$SSH_PORT" > "$ROOT/etc/ssh/sshd_config.d/test.conf"

start_receiver
write_inventory

leader() { local n; for n in $(pgrep -x systemd-nspawn); do tr '\0' ' ' < /proc/$n/cmdline | grep -q -- "--machine=$NAME " && { pgrep -P "$n" | head -1; return 0; }; done; return 1; }
boot() {  # nspawn exits 133 when the container reboots: boot it again
  ( while :; do
      systemd-nspawn --boot -D "$ROOT" --machine=$NAME --register=no --keep-unit --console=read-only >> "$LOG" 2>&1 && rc=0 || rc=$?
      echo "nspawn rc=$rc" >> "$LOG"; [ $rc -eq 133 ] || break
    done ) &
  BOOTPID=$!
}
wait_up() {
  local end=$((SECONDS + ${1:-120})) p st
  while [ $SECONDS -lt $end ]; do
    if p=$(leader) && st=$(nsenter -t "$p" -a systemctl is-system-running 2>/dev/null); then :; else st=; fi
    case "$st" in running|degraded) S true 2>/dev/null && return 0 ;; esac
    sleep 0.2
  done
  fail "the container did not come up"
}
cleanup() {
  local rc=$? p
  if [ $rc -ne 0 ]; then
    echo "---- container state ----" >&2
    S 'systemctl --no-pager --failed; /usr/local/bin/postback-pm2 ls; tail -n 20 /var/log/postback/*.log; cat /var/log/postback/alerts.log; monit summary; tail -n 20 /var/log/monit.log' >&2 2>&1 || true
    tail -30 "$LOG" >&2 || true
  fi
  if p=$(leader); then nsenter -t "$p" -a systemctl poweroff >/dev/null 2>&1 || kill -9 "$p"; fi
  for _ in $(seq 50); do leader >/dev/null || break; sleep 0.2; done
  if p=$(leader); then kill -9 "$p"; fi
  wait "${BOOTPID:-}" 2>/dev/null || true
  kill "${RECV_PID:-0}" 2>/dev/null || true
  rm -rf "$ROOT"
  exit $rc
}
trap cleanup EXIT

step "booting the container"
boot; wait_up
provision_twice
check_live_settings
check_sample

step "logrotate: the apps' logs rotate without a lost line or an app restart"
pids=$(S 'pgrep -u postback -f "dist/(ingest|delivery)/main.js" | sort | tr "\n" " "')
S 'logrotate -f /etc/logrotate.d/postback' || fail "logrotate -f /etc/logrotate.d/postback"
S 'ls /var/log/postback/delivery.log-*' >/dev/null || fail "delivery.log was not rotated"
[ "$(post /i "$(batch rot 50)")" = 202 ] || fail "POST after rotation"
wait_received 'tag=rot' 50 60
sleep 1
n=$(S 'grep -c "tag=rot" /var/log/postback/delivery.log' || true)
[ "${n:-0}" -ge 50 ] || fail "the new delivery.log has $n of the 50 deliveries made after rotation"
[ "$(S 'pgrep -u postback -f "dist/(ingest|delivery)/main.js" | sort | tr "\n" " "')" = "$pids" ] || fail "an app restarted during log rotation"

step "postback-ctl as root with nothing exported (settings from /etc/postback/postback.env)"
S 'postback-ctl status --json' | grep -q '"groupExists": true' || fail "postback-ctl status does not reach Redis or sees no workers"
S 'postback-ctl logs tail -n 5 --status 2xx' | grep -q ' OK  ' || fail "postback-ctl logs tail shows no delivery"

step "queueing 500 postbacks with the workers stopped, then rebooting"
queue_with_workers_stopped reboot
t=$SECONDS
S 'systemctl reboot' || true
sleep 3; wait_up 180
step "back after $((SECONDS - t))s; waiting for the 500"
wait_received 'tag=reboot' 500 120
step "all 500 delivered after the reboot"

step "queueing 500 more with the workers stopped, then kill -9 of the container's init"
queue_with_workers_stopped kill
sleep 1.5  # appendfsync everysec: the AOF reaches the disk within a second
kill -9 "$(leader)"; wait "$BOOTPID" 2>/dev/null || true
t=$SECONDS
boot; wait_up 180
step "cold boot took $((SECONDS - t))s; waiting for the 500"
wait_received 'tag=kill' 500 120
step "all 500 delivered after the hard kill"

step "kill -9 of the pm2 daemon and every app process: systemd restarts pm2, which resurrects the apps"
S 'systemctl is-active --quiet monit' || fail "monit is not running after boot"
before=$(S 'pgrep -u postback -f dist/delivery/main.js | sort | tr "\n" " "')
S 'pkill -9 -u postback -f "PM2 v" ; pkill -9 -u postback -f dist/delivery/main.js; pkill -9 -u postback -f dist/ingest/main.js; true'
t=$SECONDS
end=$((SECONDS + 90))
until [ "$(S 'pgrep -u postback -f dist/delivery/main.js | wc -l')" = 2 ] && [ "$(S 'pgrep -u postback -f dist/delivery/main.js | sort | tr "\n" " "')" != "$before" ]; do
  [ $SECONDS -lt $end ] || fail "the delivery workers were not back 90 s after kill -9"
  sleep 1
done
step "workers back after $((SECONDS - t))s"
[ "$(post /i "$(batch afterkill 10)")" = 202 ] || fail "POST after kill -9 of pm2"
wait_received 'tag=afterkill' 10 90

step "workers stopped behind pm2's back (as when pm2 gives up on a crashing app): monit must start them"
pm2app stop postback-delivery >/dev/null
t=$SECONDS
end=$((SECONDS + 90))
until [ "$(S 'pgrep -u postback -f dist/delivery/main.js | wc -l')" = 2 ]; do
  [ $SECONDS -lt $end ] || fail "monit did not bring the delivery workers back in 90 s"
  sleep 1
done
step "monit started them after $((SECONDS - t))s (cycle 5 s, acts after 2 failed cycles)"
end=$((SECONDS + 60))  # pm2-ensure writes it once pm2 has started them and saved the list
until S 'grep "started them -- runbook: docs/runbooks/delivery-worker-restarting.md" /var/log/postback/alerts.log'; do
  [ $SECONDS -lt $end ] || fail "no alert naming the runbook in /var/log/postback/alerts.log"
  sleep 1
done
[ "$(post /i "$(batch after 10)")" = 202 ] || fail "POST after monit recovery"
wait_received 'tag=after' 10 90
check_live_settings

step "nspawn e2e passed"
