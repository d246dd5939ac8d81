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
# The container has its own network namespace on a bridge this test creates (lib.sh, "private
# networking"): it needs none of the host's ports, so it runs beside an appliance on the host.
# Needs root, debootstrap, systemd-container, iproute2, ansible, openssh-client, curl, node.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
W=${POSTBACK_E2E_DIR:-$REPO/.cache/system}
# shellcheck source=lib.sh
. "$REPO/test/system/lib.sh"
ROOT=$W/rootfs

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "---- container state ----" >&2
    S 'systemctl --no-pager --failed; /usr/local/bin/postback-pm2 ls; tail -n 20 /var/log/postback/*.log; cat /var/log/postback/alerts.log; monit summary; tail -n 20 /var/log/monit.log' >&2 2>&1 || true
    tail -30 "$W/${NAME:-none}.log" >&2 || true
  fi
  [ -z "${NAME:-}" ] || stop_container "$NAME"
  kill "${RECV_PID:-0}" "${PROXY_PID:-0}" 2>/dev/null || true
  net_destroy
  rm -rf "$ROOT"
  exit $rc
}
trap cleanup EXIT

ensure_rootfs
ensure_node_tarball
net_create
APPLIANCE=$(net_address 1) PARTNER=$NET_HOST BASE_URL=http://$(net_address 1)
NAME=pbe2e-${NET_PREFIX##*.}
: > "$W/$NAME.log"
start_egress_proxy
step "network: bridge $NET_BR, the appliance at $APPLIANCE, the host at $NET_HOST (proxy for apt and npm $PROXY_URL)"

step "unpacking a fresh rootfs"
unpack_rootfs "$ROOT"
prepare_rootfs "$ROOT" appliance
net_container_setup "$ROOT" "$APPLIANCE"

start_receiver "$NET_HOST"
write_inventory

step "booting the container"
boot_container "$NAME" "$ROOT" "$APPLIANCE"; wait_up "$NAME" "$APPLIANCE"
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
# pm2 prints "Reloading log..." into cluster-mode apps' stdout when it reopens their logs: the apps drop it.
[ "$(post /i '{"endpoint":')" = 400 ] || fail "a bad request is not refused"  # ingest logs it: a line in the new file
sleep 1
notjson=$(S 'cat /var/log/postback/ingest.log /var/log/postback/delivery.log | jq -cR "fromjson? // . | select(type != \"object\")"')
[ -z "$notjson" ] || fail "the apps' logs hold lines that are not JSON after rotation: $notjson"

step "postback-ctl as root with nothing exported (settings from /etc/postback/postback.env)"
S 'postback-ctl status --json' | grep -q '"groupExists": true' || fail "postback-ctl status does not reach Redis or sees no workers"
S 'postback-ctl logs tail -n 5 --status 2xx' | grep -q ' OK  ' || fail "postback-ctl logs tail shows no delivery"

step "queueing 500 postbacks with the workers stopped, then rebooting"
queue_with_workers_stopped reboot
t=$SECONDS
S 'systemctl reboot' || true
sleep 3; wait_up "$NAME" "$APPLIANCE" 180
step "back after $((SECONDS - t))s; waiting for the 500"
wait_received 'tag=reboot' 500 120
step "all 500 delivered after the reboot"

step "queueing 500 more with the workers stopped, then kill -9 of the container's init"
queue_with_workers_stopped kill
sleep 1.5  # appendfsync everysec: the AOF reaches the disk within a second
kill -9 "$(leader "$NAME")"; wait "${BOOTPID[$NAME]}" 2>/dev/null || true
t=$SECONDS
boot_container "$NAME" "$ROOT" "$APPLIANCE"; wait_up "$NAME" "$APPLIANCE" 180
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
step "monit: no alert about a state that has recovered, no warning logged twice"
sleep 20  # four more cycles: a stale result would have been acted on by now
S 'grep -E "instances online|postback-(delivery|ingest): status failed" /var/log/postback/alerts.log' && fail "an alert about the pm2 apps after they were back"
dups=$(S 'sort /var/log/monit.log | uniq -d')
[ -z "$dups" ] || fail "monit.log has lines written twice: $dups"
check_live_settings

step "nspawn e2e passed"
