/**
 * The command line of `postback-ctl`, parsed with node:util parseArgs into a Command, or a UsageError
 * (exit 2) naming what is wrong. Pure: no I/O, so tests can feed it argument lists.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseStatusFilter } from './format.js';

export type Command =
  | { readonly cmd: 'help'; readonly text: string }
  | { readonly cmd: 'status'; readonly json: boolean }
  | { readonly cmd: 'dead-list'; readonly limit: number; readonly filter: DeadFilter; readonly json: boolean }
  | { readonly cmd: 'dead-replay'; readonly target: DeadTarget; readonly json: boolean }
  | { readonly cmd: 'dead-purge'; readonly target: DeadTarget; readonly yes: boolean; readonly json: boolean }
  | { readonly cmd: 'consumers-prune'; readonly minIdleMs: number; readonly yes: boolean; readonly json: boolean }
  | {
      readonly cmd: 'logs-tail';
      readonly lines: number;
      readonly follow: boolean;
      readonly file?: string;
      readonly status?: string;
      readonly host?: string;
      readonly json: boolean;
    };

/** Which dead letters: all of them, or those of a host and/or a reason. */
export interface DeadFilter {
  readonly host?: string;
  readonly reason?: string;
}

/** Dead letters named one by one (dead-letter ids or postback ids), or chosen by a filter. */
export type DeadTarget = { readonly ids: readonly string[] } | { readonly filter: DeadFilter };

export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    /** The usage text of the command concerned, printed after the message. */
    readonly usage: string,
  ) {
    super(message);
  }
}

export const USAGE = `Usage: postback-ctl <command> [options]

Commands:
  status [--json]                          Queue depths, oldest entry, retries, dead letters, consumers
  dead list [--limit N] [--host H] [--reason R] [--json]
                                           Dead letters, newest first, with their reasons
  dead replay <id>... | --all | --host H [--reason R] [--json]
                                           Put dead letters back in the queue (fresh attempts)
  dead purge <id>... | --all | --host H [--reason R] --yes [--json]
                                           Delete dead letters for good (refused without --yes)
  logs tail [-n N] [-f] [--file PATH] [--status 5xx] [--host H] [--json]
                                           The delivery log, one compact line per attempt
  consumers prune [--idle 1h] --yes [--json]
                                           Forget worker names that hold nothing and were idle that long

<id> is a dead letter's id (1795584200000-0) or its postback's id (1795584176858-0:1).
--host H matches the endpoint's host; without a port, on any port.

Settings: the environment, over /etc/postback/postback.env (POSTBACK_ENV_FILE to use another file):
REDIS_URL, QUEUE_PREFIX, POSTBACK_LOG_DIR. Exit status: 0 ok, 1 error, 2 usage error.
'postback-ctl <command> --help' for more; docs/ctl.md for examples.`;

const HELP: Record<string, string> = {
  status: `Usage: postback-ctl status [--json]

The queue at a glance: live postbacks, stream entries (waiting, in flight), age of the oldest entry
and of the oldest one held by a worker, retries scheduled and when the next is due, dead letters,
and every consumer (worker) of the group with its pending entries and idle time.

  --json   one JSON object instead of the table`,
  'dead list': `Usage: postback-ctl dead list [--limit N] [--host H] [--reason R] [--json]

Dead letters, newest first: id, postback id, age, endpoint host, attempts, reason, last status or
error, data.

  --limit N    show at most N (default 20)
  --host H     only those whose endpoint host is H (without a port: any port)
  --reason R   only those with this reason (permanent_status, permanent_error, attempts_exhausted,
               destination_forbidden, too_large, preparation_failed)
  --json       {"total", "matched", "letters": [...]} with every field`,
  'dead replay': `Usage: postback-ctl dead replay <id>... | --all | --host H [--reason R] [--json]

Put dead letters back in the queue with a fresh attempt budget; they keep their postback ids.

  <id>...      dead-letter ids (1795584200000-0) or postback ids (1795584176858-0:1)
  --all        every dead letter
  --host H     those whose endpoint host is H (without a port: any port)
  --reason R   those with this reason (alone, or with --host)
  --json       {"matched", "replayed", "skipped"}`,
  'dead purge': `Usage: postback-ctl dead purge <id>... | --all | --host H [--reason R] --yes [--json]

Delete dead letters for good. Without --yes, says how many would go and exits 2.

  <id>...      dead-letter ids or postback ids
  --all        every dead letter
  --host H     those whose endpoint host is H (without a port: any port)
  --reason R   those with this reason (alone, or with --host)
  --yes        really delete
  --json       {"matched", "purged"}`,
  'consumers prune': `Usage: postback-ctl consumers prune [--idle D] --yes [--json]
Delete from the consumer group the worker names that hold no entry and have been idle for at least D:
names left by workers that no longer run (fewer pm2 instances, a renamed host). A name that holds
entries is never deleted (those entries would be lost to every worker), nor one active meanwhile.
Without --yes, lists what would go and exits 2.
  --idle D     30m, 2h, 1d, 3600s (default 1h)
  --yes        really delete
  --json       {"matched": [...], "deleted": [...]}`,
  'logs tail': `Usage: postback-ctl logs tail [-n N] [-f] [--file PATH] [--status S] [--host H] [--json]

The delivery workers' JSON log, one compact line per attempt:
  <time>  OK|RETRY|DEAD  <status or error code>  <duration>  <attempt>/<max>  <method>  <url>  <postback id>  [...]
other events as <time> <LEVEL> <event> <message> key=value..., lines that are not JSON as they are.

  -n, --lines N    the last N matching lines (default 20; 0 = none, with -f: only new lines)
  -f, --follow     keep printing lines as they are written (survives log rotation); Ctrl-C stops
  --file PATH      the log file (default $POSTBACK_LOG_DIR/delivery.log, /var/log/postback/delivery.log)
  --status S       only attempts with these statuses: 5xx, 4xx,5xx, 404, error (no response)
  --host H         only attempts to this endpoint host (without a port: any port)
  --json           the matching lines as they are (JSON), for jq`,
};
HELP.dead = `Usage: postback-ctl dead list|replay|purge ...\n\n${['dead list', 'dead replay', 'dead purge'].map((k) => HELP[k]!.split('\n')[0]!.replace('Usage: ', '  ')).join('\n')}\n\n'postback-ctl dead <list|replay|purge> --help' for details.`;
HELP.logs = HELP['logs tail']!;
HELP.consumers = HELP['consumers prune']!;

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON: Options = { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };
const SPECS: Record<string, Options> = {
  status: { ...COMMON },
  'dead list': { ...COMMON, limit: { type: 'string' }, host: { type: 'string' }, reason: { type: 'string' } },
  'dead replay': { ...COMMON, all: { type: 'boolean' }, host: { type: 'string' }, reason: { type: 'string' } },
  'dead purge': { ...COMMON, all: { type: 'boolean' }, host: { type: 'string' }, reason: { type: 'string' }, yes: { type: 'boolean', short: 'y' } },
  'consumers prune': { ...COMMON, idle: { type: 'string' }, yes: { type: 'boolean', short: 'y' } },
  'logs tail': {
    ...COMMON,
    lines: { type: 'string', short: 'n' },
    follow: { type: 'boolean', short: 'f' },
    file: { type: 'string' },
    status: { type: 'string' },
    host: { type: 'string' },
  },
};
const POSITIONALS = new Set(['dead replay', 'dead purge']);

function count(value: string | undefined, name: string, dflt: number, usage: string): number {
  if (value === undefined) return dflt;
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a whole number, not "${value}"`, usage);
  return Number(value);
}

/** `90s`, `30m`, `2h`, `1d` (a bare number is seconds) -> ms. */
function duration(value: string | undefined, name: string, dflt: number, usage: string): number {
  if (value === undefined) return dflt;
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (!m) throw new UsageError(`${name} must be a duration like 30m, 2h, 1d or 3600s, not "${value}"`, usage);
  return Number(m[1]) * { '': 1000, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

function nonEmpty(value: string | undefined, name: string, usage: string): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '') throw new UsageError(`${name} needs a value`, usage);
  return value.trim();
}

function target(v: Record<string, unknown>, ids: string[], usage: string): DeadTarget {
  const host = nonEmpty(v.host as string | undefined, '--host', usage);
  const reason = nonEmpty(v.reason as string | undefined, '--reason', usage);
  const all = v.all === true;
  const kinds = [ids.length > 0, all, host !== undefined || reason !== undefined].filter(Boolean).length;
  if (kinds === 0) throw new UsageError('say which dead letters: <id>..., --all, or --host H / --reason R', usage);
  if (kinds > 1) throw new UsageError('give either ids, or --all, or --host/--reason, not several', usage);
  const bad = ids.find((id) => !/^\d+-\d+(:\d+)?$/.test(id));
  if (bad !== undefined) throw new UsageError(`"${bad}" is not a dead-letter id (1795584200000-0) or a postback id (1795584176858-0:1)`, usage);
  if (ids.length) return { ids };
  return { filter: { ...(host !== undefined ? { host } : {}), ...(reason !== undefined ? { reason } : {}) } };
}

/** argv without `node` and the script. Throws UsageError. */
export function parseCommand(argv: readonly string[]): Command {
  const args = [...argv];
  if (args.length === 0) throw new UsageError('no command given', USAGE);
  if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    const topic = args.slice(1).join(' ');
    return { cmd: 'help', text: topic && HELP[topic] ? HELP[topic]! : USAGE };
  }
  let name = args.shift()!;
  if (name === 'dead' || name === 'logs' || name === 'consumers') {
    const sub = args[0];
    if (sub === undefined || sub.startsWith('-')) {
      if (sub === '--help' || sub === '-h') return { cmd: 'help', text: HELP[name]! };
      throw new UsageError(`"${name}" needs a subcommand`, HELP[name]!);
    }
    args.shift();
    name = `${name} ${sub}`;
  }
  const spec = SPECS[name];
  const usage = HELP[name] ?? USAGE;
  if (!spec) throw new UsageError(`unknown command "${name}"`, USAGE);
  let parsed;
  try {
    parsed = parseArgs({ args, options: spec, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), usage);
  }
  const v = parsed.values as Record<string, unknown>;
  if (v.help) return { cmd: 'help', text: usage };
  if (parsed.positionals.length && !POSITIONALS.has(name)) {
    throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`, usage);
  }
  const json = v.json === true;
  switch (name) {
    case 'status':
      return { cmd: 'status', json };
    case 'dead list': {
      const host = nonEmpty(v.host as string | undefined, '--host', usage);
      const reason = nonEmpty(v.reason as string | undefined, '--reason', usage);
      const limit = count(v.limit as string | undefined, '--limit', 20, usage);
      return { cmd: 'dead-list', limit, filter: { ...(host !== undefined ? { host } : {}), ...(reason !== undefined ? { reason } : {}) }, json };
    }
    case 'dead replay':
      return { cmd: 'dead-replay', target: target(v, parsed.positionals, usage), json };
    case 'dead purge':
      return { cmd: 'dead-purge', target: target(v, parsed.positionals, usage), yes: v.yes === true, json };
    case 'consumers prune':
      return { cmd: 'consumers-prune', minIdleMs: duration(v.idle as string | undefined, '--idle', 3_600_000, usage), yes: v.yes === true, json };
    case 'logs tail': {
      const status = nonEmpty(v.status as string | undefined, '--status', usage);
      if (status !== undefined) {
        try {
          parseStatusFilter(status);
        } catch (err) {
          throw new UsageError((err as Error).message, usage);
        }
      }
      const host = nonEmpty(v.host as string | undefined, '--host', usage);
      const file = nonEmpty(v.file as string | undefined, '--file', usage);
      return {
        cmd: 'logs-tail',
        lines: count(v.lines as string | undefined, '--lines', 20, usage),
        follow: v.follow === true,
        ...(file !== undefined ? { file } : {}),
        ...(status !== undefined ? { status } : {}),
        ...(host !== undefined ? { host } : {}),
        json,
      };
    }
  }
  throw new UsageError(`unknown command "${name}"`, USAGE);
}
