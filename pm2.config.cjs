/**
 * pm2 ecosystem of the postback appliance: the ingest service (cluster mode, shares port INGEST_PORT)
 * and the delivery workers (fork mode, one consumer each).
 *
 *   pm2 startOrReload pm2.config.cjs      start, or zero-downtime reload after a deploy
 *   pm2 ls / pm2 logs / pm2 monit         see docs/operations.md
 *
 * Settings come from the environment file Ansible writes (POSTBACK_ENV_FILE, default
 * /etc/postback/postback.env, readable by the app user only) and are passed to every process; the
 * process layout comes from the variables below, also in that file.
 *   PM2_INGEST_INSTANCES     ingest processes (cluster mode)                 default 2
 *   PM2_DELIVERY_INSTANCES   delivery worker processes                      default 2
 *   PM2_INGEST_MAX_MEMORY    restart an ingest process above this RSS       default 300M
 *   PM2_DELIVERY_MAX_MEMORY  restart a worker above this RSS                default 500M
 *   POSTBACK_LOG_DIR         where pm2 writes the apps' logs                default /var/log/postback
 *   POSTBACK_APP_DIR         the release pm2 runs                           default this file's folder
 *
 * On the appliance POSTBACK_APP_DIR is /opt/postback/current, the symlink a deploy moves: pm2 keeps the
 * script path it was given, so every restart or reload after a deploy runs the new release. (This file's
 * own folder is the symlink's target, one release, which a deploy would never leave.)
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function readEnvFile(file) {
  const env = {};
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return env; // no file: development, everything from the process environment and the defaults
  }
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/.exec(line);
    if (!m) continue;
    let value = m[2];
    if (/^".*"$/.test(value) || /^'.*'$/.test(value)) value = value.slice(1, -1);
    env[m[1]] = value;
  }
  return env;
}

const envFile = process.env.POSTBACK_ENV_FILE || '/etc/postback/postback.env';
const env = { ...readEnvFile(envFile) };
const setting = (name, dflt) => process.env[name] || env[name] || dflt;
const logDir = setting('POSTBACK_LOG_DIR', '/var/log/postback');
const appDir = setting('POSTBACK_APP_DIR', __dirname);

// Longer than a worker's own bounded shutdown (DELIVERY_BLOCK_MS + DELIVERY_SHUTDOWN_TIMEOUT_MS + 3 s,
// 13 s with the defaults), so pm2 never SIGKILLs a worker that is handing its postbacks back.
const deliveryKillTimeout =
  Number(setting('DELIVERY_BLOCK_MS', '2000')) + Number(setting('DELIVERY_SHUTDOWN_TIMEOUT_MS', '8000')) + 5000;

const common = {
  cwd: appDir,
  env,
  // Logs: one file per app (instances interleave, each line is JSON with its pid), plain lines (the
  // apps write JSON themselves), rotated by logrotate with `pm2 reloadLogs`.
  merge_logs: true,
  log_date_format: '',
  time: false,
  autorestart: true,
  // A process that crashes in a loop backs off instead of spinning.
  exp_backoff_restart_delay: 200,
  max_restarts: 50,
  min_uptime: 5000,
};

module.exports = {
  apps: [
    {
      ...common,
      name: 'postback-ingest',
      script: path.join(appDir, 'dist/ingest/main.js'),
      exec_mode: 'cluster',
      instances: Number(setting('PM2_INGEST_INSTANCES', '2')),
      // main.ts calls process.send('ready') once it listens and Redis answered (or after 5 s).
      wait_ready: true,
      listen_timeout: 10000,
      kill_timeout: 10000,
      max_memory_restart: setting('PM2_INGEST_MAX_MEMORY', '300M'),
      out_file: path.join(logDir, 'ingest.log'),
      error_file: path.join(logDir, 'ingest-error.log'),
    },
    {
      ...common,
      name: 'postback-delivery',
      script: path.join(appDir, 'dist/delivery/main.js'),
      exec_mode: 'fork',
      instances: Number(setting('PM2_DELIVERY_INSTANCES', '2')),
      // Each instance gets NODE_APP_INSTANCE 0..n-1: its consumer name is <hostname>-<n>, stable across
      // restarts, so a restarted worker resumes its own unfinished postbacks at once.
      instance_var: 'NODE_APP_INSTANCE',
      wait_ready: true,
      listen_timeout: 15000,
      kill_timeout: deliveryKillTimeout,
      max_memory_restart: setting('PM2_DELIVERY_MAX_MEMORY', '500M'),
      out_file: path.join(logDir, 'delivery.log'),
      error_file: path.join(logDir, 'delivery-error.log'),
    },
  ],
};
