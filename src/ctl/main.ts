#!/usr/bin/env node
/**
 * postback-ctl: the operator's command line. `postback-ctl --help`, docs/ctl.md.
 *
 * Settings come through the one config module, from the environment over the appliance's env file
 * (/etc/postback/postback.env, or POSTBACK_ENV_FILE), so on the server `postback-ctl status` run as
 * root needs nothing exported. Every Redis command goes through src/shared/queue.ts.
 *
 * Exit status: 0 ok, 1 error (Redis unreachable, bad configuration, nothing found), 2 usage error
 * (including a purge without --yes).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { ConfigError, loadConfig, type Config } from '../shared/config.js';
import { QueueInspector, type DeadLetter, type DeadLetterMatch } from '../shared/queue.js';
import { createRedis } from '../shared/redis.js';
import { parseCommand, UsageError, type Command, type DeadFilter, type DeadTarget } from './args.js';
import { DEFAULT_ENV_FILE, mergeEnv, parseEnvFile } from './envfile.js';
import { deadLetterJson, formatDuration, hostMatches, isPm2Noise, redactRedisUrl, logLineMatches, parseLogLine, parseStatusFilter, renderDeadLetters, renderLogLine, renderStatus, templateHost } from './format.js';
import { follow, lastLines } from './logs.js';

/** An error to report on one line and exit with `code`. */
class Failure extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function warn(text: string): void {
  process.stderr.write(`postback-ctl: ${text}\n`);
}

/** The environment file's settings; {} when it is absent, a warning when it cannot be read. */
function readEnvFile(): Record<string, string> {
  const file = process.env.POSTBACK_ENV_FILE || DEFAULT_ENV_FILE;
  try {
    return parseEnvFile(readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') warn(`cannot read ${file} (${code ?? (err as Error).message}): using the environment alone; run as root to read it`);
    return {};
  }
}

function loadSettings(): Config {
  try {
    return loadConfig(mergeEnv(readEnvFile(), process.env));
  } catch (err) {
    if (err instanceof ConfigError) throw new Failure(err.message);
    throw err;
  }
}

/** The dead letters a filter picks; undefined (every one) when it has no condition. */
function matcher(filter: DeadFilter): DeadLetterMatch | undefined {
  if (filter.host === undefined && filter.reason === undefined) return undefined;
  return (d: DeadLetter) =>
    (filter.host === undefined || hostMatches(templateHost(d.url), filter.host)) && (filter.reason === undefined || d.reason === filter.reason);
}

function describeTarget(t: DeadTarget): string {
  if ('ids' in t) return t.ids.join(' ');
  const parts = [t.filter.host !== undefined ? `host ${t.filter.host}` : '', t.filter.reason !== undefined ? `reason ${t.filter.reason}` : ''].filter(Boolean);
  return parts.length ? parts.join(', ') : 'all';
}

/** The dead letters named by id; fails naming any id that matches none. */
async function byIds(inspector: QueueInspector, ids: readonly string[]): Promise<DeadLetter[]> {
  const letters: DeadLetter[] = [];
  const missing: string[] = [];
  for (const id of ids) {
    const found = await inspector.findDeadLetters(id);
    if (found.length === 0) missing.push(id);
    for (const d of found) if (!letters.some((l) => l.deadId === d.deadId)) letters.push(d);
  }
  if (missing.length) throw new Failure(`no dead letter ${missing.join(', ')}`);
  return letters;
}

const CONNECT_DEADLINE_MS = 5000;

/** Resolves once the connection is ready; rejects if it ends or takes longer than `ms`. */
function connected(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no answer in ${ms / 1000} s`)), ms);
    const onReady = () => done();
    const onEnd = () => done(new Error('connection closed'));
    const done = (err?: Error) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    redis.once('ready', onReady);
    redis.once('end', onEnd);
  });
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

async function runRedisCommand(cmd: Exclude<Command, { cmd: 'help' } | { cmd: 'logs-tail' }>, config: Config, redis: Redis): Promise<number> {
  const inspector = new QueueInspector(redis, config.queuePrefix);
  const now = Date.now();
  switch (cmd.cmd) {
    case 'status': {
      const s = await inspector.inspect(now);
      out(cmd.json ? JSON.stringify(s, null, 2) : renderStatus(s, now, config.redisUrl));
      return 0;
    }
    case 'dead-list': {
      const { letters, matched, total } = await inspector.listDeadLetters(matcher(cmd.filter), cmd.limit);
      if (cmd.json) {
        out(JSON.stringify({ total, matched, letters: letters.map(deadLetterJson) }, null, 2));
      } else if (matched === 0) {
        out(total === 0 ? 'No dead letters.' : `No dead letters match (${plural(total, 'dead letter')} in all).`);
      } else {
        const filtered = cmd.filter.host !== undefined || cmd.filter.reason !== undefined;
        out(renderDeadLetters(letters, now));
        out(`\n${letters.length} of ${matched}${filtered ? ` matching (${total} in all)` : ''}, newest first.`);
      }
      return 0;
    }
    case 'dead-replay': {
      let r: { matched: number; replayed: number; skipped: number };
      if ('ids' in cmd.target) {
        const letters = await byIds(inspector, cmd.target.ids);
        r = { matched: letters.length, ...(await inspector.replay(letters)) };
      } else {
        const m = await inspector.replayMatching(matcher(cmd.target.filter) ?? (() => true));
        r = { matched: m.matched, replayed: m.replayed, skipped: m.skipped };
      }
      if (cmd.json) out(JSON.stringify(r));
      else {
        out(`Replayed ${plural(r.replayed, 'dead letter')} (${describeTarget(cmd.target)}): back in the queue with a fresh attempt budget.`);
        if (r.skipped) out(`Skipped ${r.skipped}: no endpoint to deliver to (malformed queue entries); purge them when read.`);
      }
      return 0;
    }
    case 'dead-purge': {
      if (!cmd.yes) {
        const n = 'ids' in cmd.target ? (await byIds(inspector, cmd.target.ids)).length : (await inspector.listDeadLetters(matcher(cmd.target.filter), 0)).matched;
        warn(`would delete ${plural(n, 'dead letter')} (${describeTarget(cmd.target)}) for good; add --yes to do it`);
        return 2;
      }
      let r: { matched: number; purged: number };
      if ('ids' in cmd.target) {
        const letters = await byIds(inspector, cmd.target.ids);
        r = { matched: letters.length, purged: await inspector.purge(letters) };
      } else {
        const m = await inspector.purgeMatching(matcher(cmd.target.filter) ?? (() => true));
        r = { matched: m.matched, purged: m.purged };
      }
      out(cmd.json ? JSON.stringify(r) : `Purged ${plural(r.purged, 'dead letter')} (${describeTarget(cmd.target)}).`);
      return 0;
    }
    case 'consumers-prune': {
      const stale = await inspector.staleConsumers(cmd.minIdleMs);
      const names = stale.map((c) => c.name);
      const idle = formatDuration(cmd.minIdleMs);
      if (!cmd.yes) {
        if (cmd.json) out(JSON.stringify({ matched: names, deleted: [] }));
        else for (const c of stale) out(`${c.name}  idle ${formatDuration(c.idleMs)}`);
        warn(`would delete ${plural(names.length, 'consumer')} holding nothing, with no live worker, and idle for ${idle} or more; add --yes to do it`);
        return 2;
      }
      const deleted = await inspector.pruneConsumers(names, cmd.minIdleMs);
      out(
        cmd.json
          ? JSON.stringify({ matched: names, deleted })
          : `Deleted ${plural(deleted.length, 'consumer')} holding nothing, with no live worker, and idle for ${idle} or more${deleted.length ? `: ${deleted.join(', ')}` : ''}.`,
      );
      return 0;
    }
  }
}

async function tailLogs(cmd: Extract<Command, { cmd: 'logs-tail' }>, config: Config): Promise<number> {
  const file = cmd.file ?? path.join(config.logDir, 'delivery.log');
  const filter = {
    ...(cmd.status !== undefined ? { status: parseStatusFilter(cmd.status) } : {}),
    ...(cmd.host !== undefined ? { host: cmd.host } : {}),
  };
  const keep = (line: string) => line.trim() !== '' && !isPm2Noise(line) && logLineMatches(parseLogLine(line), filter);
  const print = (line: string) => out(cmd.json ? line : renderLogLine(line));
  let end = 0;
  try {
    const last = await lastLines(file, cmd.lines, keep);
    for (const line of last.lines) print(line);
    end = last.end;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!(cmd.follow && code === 'ENOENT')) throw new Failure(`cannot read ${file}: ${code ?? (err as Error).message}${code === 'ENOENT' ? ' (--file PATH, or POSTBACK_LOG_DIR)' : ''}`);
  }
  if (!cmd.follow) return 0;
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  await follow(file, end, (line) => keep(line) && print(line), { signal: stop.signal });
  return 0;
}

async function main(argv: readonly string[]): Promise<number> {
  let cmd: Command;
  try {
    cmd = parseCommand(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    warn(err.message);
    process.stderr.write(`\n${err.usage}\n`);
    return 2;
  }
  if (cmd.cmd === 'help') {
    out(cmd.text);
    return 0;
  }
  const config = loadSettings();
  if (cmd.cmd === 'logs-tail') return tailLogs(cmd, config);

  const redis = createRedis(config.redisUrl, 'tool');
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => (lastError = err));
  try {
    await connected(redis, CONNECT_DEADLINE_MS);
  } catch (err) {
    redis.disconnect();
    const why = lastError?.message ?? (err as Error).message;
    throw new Failure(`Redis at ${redactRedisUrl(config.redisUrl)}: cannot reach it: ${why}`);
  }
  try {
    return await runRedisCommand(cmd, config, redis);
  } catch (err) {
    if (err instanceof Failure) throw err;
    // ioredis reports a Redis that is not there as "max retries" or "connection is closed": say why.
    const message = (err as Error).message;
    const detail = lastError && lastError !== err ? `cannot reach it: ${lastError.message}` : message;
    throw new Failure(`Redis at ${redactRedisUrl(config.redisUrl)}: ${detail}`);
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

// Piped into head: stop quietly when the reader goes away.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    warn(err instanceof Failure ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = err instanceof Failure ? err.code : 1;
  },
);
