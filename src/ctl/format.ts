/**
 * What `postback-ctl` prints, as pure functions of the data: durations, aligned tables, the status
 * page, the dead-letter table, and the compact rendering of delivery log lines. No I/O here, so all
 * of it is covered by table-driven tests (test/unit/ctl-format.test.ts).
 */
import { hostOf } from '../delivery/redact.js';
import type { DeadLetter, QueueInspection } from '../shared/queue.js';

// ------------------------------------------------------------------------------------- durations

/** A duration for humans: 850ms, 4.2s, 42s, 3m12s, 2h05m, 3d04h. Negative counts as 0. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const t = Math.max(0, ms);
  if (t < 1000) return `${Math.floor(t)}ms`;
  const s = t / 1000;
  if (s < 10) return `${(Math.floor(s * 10) / 10).toFixed(1)}s`;
  const secs = Math.floor(s);
  if (secs < 60) return `${secs}s`;
  const two = (n: number) => String(n).padStart(2, '0');
  if (secs < 3600) return `${Math.floor(secs / 60)}m${two(secs % 60)}s`;
  if (secs < 86_400) return `${Math.floor(secs / 3600)}h${two(Math.floor((secs % 3600) / 60))}m`;
  return `${Math.floor(secs / 86_400)}d${two(Math.floor((secs % 86_400) / 3600))}h`;
}

// ----------------------------------------------------------------------------------------- tables

export interface Column {
  readonly header: string;
  /** Numbers read best right-aligned. @defaultValue left */
  readonly align?: 'left' | 'right';
}

/** Rows under headers, columns padded to their widest cell, two spaces apart, no trailing spaces. */
export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? '';
        return c.align === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
      })
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...rows.map(line)].join('\n');
}

// ------------------------------------------------------------------------------------------ hosts

/**
 * The host (with its port, if not the scheme's default) of a URL or URL template, lower-cased; '' if
 * it has none. The same value as the delivery log's `endpointHost`, so one `--host` works for both.
 */
export function templateHost(url: string): string {
  const host = hostOf(url);
  if (host) return host;
  // A template whose host itself has a placeholder does not parse as a URL: take the authority as written.
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^@/?#]*@)?([^/?#]*)/.exec(url);
  return m ? m[1]!.toLowerCase() : '';
}

/**
 * Whether a host (`example.com` or `example.com:8080`) is the one an operator named: the same host and
 * port when the filter has a port, the same host on any port when it has none. Case-insensitive.
 */
export function hostMatches(host: string, filter: string): boolean {
  const h = host.toLowerCase();
  const f = filter.trim().toLowerCase();
  if (!f) return false;
  if (h === f) return true;
  return !/:\d+$/.test(f) && h.replace(/:\d+$/, '') === f;
}

// ------------------------------------------------------------------------------ status filters

/**
 * `--status` for the log: a comma-separated list of `2xx`..`5xx`, exact codes (`404`), or `error`
 * (no HTTP response: timeout, refused, ...). Throws on anything else.
 */
export function parseStatusFilter(spec: string): (status: number | null) => boolean {
  const parts = spec
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (parts.length === 0) throw new Error(`bad --status "${spec}": expected e.g. 5xx, 404, 4xx,5xx or error`);
  const tests = parts.map((p): ((s: number | null) => boolean) => {
    if (p === 'error') return (s) => s === null;
    if (/^[1-5]xx$/.test(p)) {
      const c = Number(p[0]);
      return (s) => s !== null && Math.floor(s / 100) === c;
    }
    if (/^[1-5]\d\d$/.test(p)) return (s) => s === Number(p);
    throw new Error(`bad --status "${spec}": expected e.g. 5xx, 404, 4xx,5xx or error`);
  });
  return (s) => tests.some((t) => t(s));
}

// ------------------------------------------------------------------------------------ the log

/** A line of the delivery log, parsed; undefined when it is not a JSON object (printed as it is). */
export type LogRecord = Record<string, unknown>;

export function parseLogLine(line: string): LogRecord | undefined {
  const t = line.trim();
  if (!t.startsWith('{')) return undefined;
  try {
    const v: unknown = JSON.parse(t);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as LogRecord) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lines pm2 itself wrote into an app's log: `Reloading log...` after `pm2 reloadLogs` in cluster mode
 * (the apps drop it since this release; files written before may hold it). `logs tail` skips them.
 */
export function isPm2Noise(line: string): boolean {
  return line.trim() === 'Reloading log...';
}

const OUTCOME: Record<string, string> = {
  delivery_succeeded: 'OK',
  delivery_retry_scheduled: 'RETRY',
  delivery_dead_lettered: 'DEAD',
};

export function isDeliveryRecord(r: LogRecord): boolean {
  return typeof r.event === 'string' && r.event in OUTCOME;
}

export interface LogFilter {
  /** From parseStatusFilter. */
  readonly status?: (status: number | null) => boolean;
  readonly host?: string;
}

/**
 * Whether a log line passes the filters. With no filter every line does, unparsable ones included;
 * with any filter only delivery attempts can, since only they have a status and a host.
 */
export function logLineMatches(record: LogRecord | undefined, filter: LogFilter): boolean {
  if (!filter.status && filter.host === undefined) return true;
  if (!record || !isDeliveryRecord(record)) return false;
  if (filter.status) {
    const s = typeof record.status === 'number' ? record.status : null;
    if (!filter.status(s)) return false;
  }
  if (filter.host !== undefined) {
    const host = typeof record.endpointHost === 'string' ? record.endpointHost : typeof record.url === 'string' ? templateHost(record.url) : '';
    if (!hostMatches(host, filter.host)) return false;
  }
  return true;
}

const str = (v: unknown): string => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));

/** Keys every log line has, or shown in their own place: not repeated as key=value. */
const SHOWN = new Set(['timestamp', 'level', 'message', 'event', 'service', 'pid']);

/**
 * One log line for humans. A delivery attempt becomes
 *   `<time>  OK     200        12ms  1/5  GET   <url>  <postback id>[  <reason | next in ...>]`
 * (status column: the HTTP status, or the error code when there was no response); any other JSON line
 * `<time>  <LEVEL>  <event>  <message>  key=value ...`; a line that is not JSON is returned unchanged.
 */
export function renderLogLine(line: string): string {
  const r = parseLogLine(line);
  if (!r) return line;
  const time = str(r.timestamp ?? r.deliveredAt).padEnd(24);
  if (isDeliveryRecord(r)) {
    const outcome = OUTCOME[str(r.event)]!.padEnd(5);
    const status = (typeof r.status === 'number' ? String(r.status) : str(r.errCode) || '-').padEnd(9);
    const took = (typeof r.durationMs === 'number' ? formatDuration(r.durationMs) : '-').padStart(7);
    const attempt = (r.attempt !== undefined ? `${str(r.attempt)}/${str(r.maxAttempts) || '?'}` : '-').padEnd(5);
    const method = (str(r.method) || '-').padEnd(4);
    const url = str(r.url) || '-';
    const tail: string[] = [str(r.postbackId ?? r.entryId)];
    if (typeof r.nextAttemptInMs === 'number') tail.push(`next in ${formatDuration(r.nextAttemptInMs)}`);
    if (r.reason !== undefined) tail.push(str(r.reason));
    if (typeof r.status !== 'number' && r.error !== undefined) tail.push(str(r.error));
    return `${time}  ${outcome}  ${status}  ${took}  ${attempt}  ${method}  ${url}  ${tail.filter(Boolean).join('  ')}`.trimEnd();
  }
  const level = str(r.level).toUpperCase().padEnd(5);
  const rest = Object.entries(r)
    .filter(([k]) => !SHOWN.has(k))
    .map(([k, v]) => `${k}=${str(v)}`);
  return [`${time}  ${level}`, str(r.event), str(r.message), ...rest].filter(Boolean).join('  ');
}

// ------------------------------------------------------------------------------- status page

/** A Redis URL fit to print: the passwords (the data nodes' and `sentinelPassword`) replaced by `***`. */
export function redactRedisUrl(url: string): string {
  return url
    .replace(/^([a-z-]+:\/\/)([^@/]*)@/i, (_m, scheme: string, auth: string) => {
      const colon = auth.indexOf(':');
      return `${scheme}${colon < 0 ? '***' : `${auth.slice(0, colon)}:***`}@`;
    })
    .replace(/([?&]sentinelPassword=)[^&#]*/i, '$1***');
}

/** `postback-ctl status` for humans. */
export function renderStatus(s: QueueInspection, now: number, redisUrl: string): string {
  const rows: [string, string, string][] = [
    ['live postbacks', String(s.live), 'waiting, in flight or scheduled for a retry'],
    ['stream entries', String(s.streamLength), `${s.waiting} waiting, ${s.inFlight} in flight`],
    ['oldest entry', s.streamLength ? formatDuration(s.oldestAgeMs) : '-', s.streamLength ? 'age of the oldest entry in the stream' : ''],
    [
      'oldest in flight',
      s.oldestInFlight ? formatDuration(s.oldestInFlight.ageMs) : '-',
      s.oldestInFlight
        ? `${s.oldestInFlight.entryId} on ${s.oldestInFlight.consumer}, idle ${formatDuration(s.oldestInFlight.idleMs)}, read ${s.oldestInFlight.deliveries}x`
        : '',
    ],
    [
      'retry scheduled',
      String(s.retryScheduled),
      s.nextRetryDueMs !== undefined
        ? s.nextRetryDueMs <= now
          ? `next overdue by ${formatDuration(now - s.nextRetryDueMs)}`
          : `next due in ${formatDuration(s.nextRetryDueMs - now)}`
        : '',
    ],
    ['dead letters', String(s.deadLetters), s.deadLetters ? 'postback-ctl dead list' : ''],
    ['templates', String(s.templates), ''],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const out = [`Queue  ${redactRedisUrl(redisUrl)}  prefix ${s.prefix}`];
  for (const [k, v, note] of rows) out.push(`  ${k.padEnd(w0)}  ${v.padStart(w1)}${note ? `  ${note}` : ''}`);
  out.push('');
  if (!s.groupExists) {
    out.push('Consumers  none: the consumer group does not exist yet (no worker has started)');
  } else if (s.consumers.length === 0) {
    out.push('Consumers  none registered');
  } else {
    out.push(`Consumers  (group delivery, ${s.consumers.length})`);
    // ALIVE is the worker's heartbeat (the same on every Redis); IDLE and INACTIVE are Redis's own
    // view, whose meaning changed in 7.2 (docs/ctl.md).
    const table = formatTable(
      [
        { header: 'NAME' },
        { header: 'ALIVE' },
        { header: 'PENDING', align: 'right' },
        { header: 'IDLE', align: 'right' },
        { header: 'INACTIVE', align: 'right' },
      ],
      s.consumers.map((c) => [
        c.name,
        c.heartbeatAgeMs === undefined ? 'no' : `yes, ${formatDuration(c.heartbeatAgeMs)} ago`,
        String(c.pending),
        formatDuration(c.idleMs),
        c.inactiveMs === undefined ? '-' : formatDuration(c.inactiveMs),
      ]),
    );
    out.push(...table.split('\n').map((l) => `  ${l}`));
  }
  return out.join('\n');
}

// ------------------------------------------------------------------------------- dead letters

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The dead-letter table: newest first as given. */
export function renderDeadLetters(letters: readonly DeadLetter[], now: number): string {
  return formatTable(
    [
      { header: 'DEAD ID' },
      { header: 'POSTBACK ID' },
      { header: 'AGE', align: 'right' },
      { header: 'HOST' },
      { header: 'ATTEMPTS', align: 'right' },
      { header: 'REASON' },
      { header: 'LAST' },
      { header: 'DATA' },
    ],
    letters.map((d) => [
      d.deadId,
      d.id,
      d.failedAt ? formatDuration(now - d.failedAt) : '-',
      templateHost(d.url) || '-',
      String(d.attempts),
      d.reason || '-',
      oneLine(d.status ? `HTTP ${d.status}` : d.error || '-', 40),
      oneLine(d.data, 60),
    ]),
  );
}

/** A dead letter for --json: its fields, the host, the data parsed when it is JSON. */
export function deadLetterJson(d: DeadLetter): Record<string, unknown> {
  let data: unknown = d.data;
  try {
    data = JSON.parse(d.data);
  } catch {
    /* keep the text */
  }
  return { ...d, host: templateHost(d.url), failedAt: d.failedAt ? new Date(d.failedAt).toISOString() : null, data };
}
