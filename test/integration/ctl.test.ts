/**
 * postback-ctl end to end: the compiled CLI (`node dist/ctl/main.js`, built by `npm run build`) run as a
 * child process against a real redis-server, with real dead letters made by real deliveries to local
 * endpoints answering 404, and real replays delivered once the endpoint answers 200.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Receiver } from '../helpers/receiver.js';
import { freePort } from '../helpers/redis-server.js';
import { AppProcess } from '../helpers/app-process.js';
import { Stack } from '../helpers/stack.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const entry = path.join(root, 'dist', 'ctl', 'main.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'pb-ctl-'));
/** No /etc/postback/postback.env of the machine running the tests leaks in. */
const NO_ENV_FILE = path.join(tmp, 'absent.env');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function start(args: readonly string[], env: Record<string, string>) {
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build`);
  return spawn(process.execPath, [entry, ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', POSTBACK_ENV_FILE: NO_ENV_FILE, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function ctl(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const proc = start(args, env);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`postback-ctl ${args.join(' ')} did not exit in 30 s`));
    }, 30_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      // 'exit' can come before the last output: wait for the streams to end.
      let open = 2;
      const done = () => --open === 0 && resolve({ code, stdout, stderr });
      if (proc.stdout.readableEnded) done();
      else proc.stdout.once('end', done);
      if (proc.stderr.readableEnded) done();
      else proc.stderr.once('end', done);
    });
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

after(() => rmSync(tmp, { recursive: true, force: true }));

describe('postback-ctl: usage', () => {
  it('--help prints the usage and exits 0', async () => {
    const r = await ctl(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: postback-ctl <command>/);
    for (const c of ['status', 'dead list', 'dead replay', 'dead purge', 'logs tail']) assert.ok(r.stdout.includes(c), c);
  });

  it('a subcommand has its own --help', async () => {
    const r = await ctl(['dead', 'purge', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: postback-ctl dead purge/);
  });

  for (const args of [[], ['bogus'], ['status', '--nope'], ['dead'], ['dead', 'replay'], ['dead', 'replay', 'x'], ['dead', 'purge', '--all', '--host', 'h'], ['dead', 'list', '--limit', 'ten'], ['logs', 'tail', '--status', '7xx']]) {
    it(`exits 2 with the usage for: ${args.join(' ') || '(nothing)'}`, async () => {
      const r = await ctl(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^postback-ctl: .+\n\nUsage: postback-ctl/);
      assert.equal(r.stdout, '');
    });
  }

  it('exits 1 naming Redis when it cannot be reached', async () => {
    const r = await ctl(['status'], { REDIS_URL: `redis://:secret@127.0.0.1:${await freePort()}` });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^postback-ctl: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: cannot reach it: .*ECONNREFUSED/);
    assert.ok(!r.stderr.includes('secret'), 'the password is not printed');
  });

  it('exits 1 naming a bad setting', async () => {
    const r = await ctl(['status'], { QUEUE_PREFIX: 'has spaces' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /QUEUE_PREFIX/);
  });
});

describe('postback-ctl status', () => {
  let stack: Stack;
  let env: Record<string, string>;
  before(async () => {
    stack = await Stack.start({
      // A retry that stays scheduled, and a delivery that stays in flight while the CLI looks.
      env: { DELIVERY_BACKOFF_BASE_MS: '600000', DELIVERY_BACKOFF_MAX_MS: '600000', DELIVERY_TIMEOUT_MS: '60000', DELIVERY_CLAIM_MIN_IDLE_MS: '130000' },
      handler: (req) => (req.url.startsWith('/slow') ? { delayMs: 45_000 } : req.url.startsWith('/later') ? { status: 503 } : { status: 404 }),
    });
    env = { REDIS_URL: stack.redisServer.url };
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/gone?n={n}` }, data: [{ n: 1 }, { n: 2 }] });
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/later` }, data: [{}] });
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/slow` }, data: [{}] });
    await stack.waitForEvents('delivery_dead_lettered', 2);
    await stack.waitForEvents('delivery_retry_scheduled', 1);
    await until('the slow delivery to start', () => stack.receiver.requests.some((r) => r.url === '/slow'));
  });
  after(async () => {
    await stack.stop();
  });

  it('--json: depths, the oldest entry in flight, retries, dead letters, the worker as a consumer', async () => {
    const r = await ctl(['status', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.prefix, 'pb');
    assert.equal(s.live, 2, 'the slow one and the one waiting for its retry');
    assert.equal(s.streamLength, 1);
    assert.equal(s.inFlight, 1);
    assert.equal(s.waiting, 0);
    assert.ok(s.oldestAgeMs > 0);
    assert.equal(s.oldestInFlight.consumer, 'test-worker');
    assert.ok(s.oldestInFlight.ageMs + 1000 >= s.oldestInFlight.idleMs, 'held since it was read (client and server clocks aside)');
    assert.equal(s.retryScheduled, 1);
    assert.ok(s.nextRetryDueMs > Date.now() + 240_000, 'the retry is due minutes from now (5-10 min: equal jitter)');
    assert.equal(s.deadLetters, 2);
    assert.equal(s.templates, 3);
    assert.equal(s.groupExists, true);
    assert.deepEqual(s.consumers.map((c: { name: string; pending: number }) => [c.name, c.pending]), [['test-worker', 1]]);
  });

  it('for humans: an aligned summary and a consumer table', async () => {
    const r = await ctl(['status'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Queue  ${stack.redisServer.url.replace(/\./g, '\\.')}  prefix pb$`, 'm'));
    assert.match(r.stdout, /^ {2}live postbacks +2 {2}/m);
    assert.match(r.stdout, /^ {2}stream entries +1 {2}0 waiting, 1 in flight$/m);
    assert.match(r.stdout, /^ {2}oldest in flight +\S+ {2}\d+-\d+ on test-worker, idle \S+, read 1x$/m);
    assert.match(r.stdout, /^ {2}retry scheduled +1 {2}next due in ([4-9]|10)m\d\ds$/m);
    assert.match(r.stdout, /^ {2}dead letters +2 {2}postback-ctl dead list$/m);
    assert.match(r.stdout, /^ {2}NAME +ALIVE +PENDING +IDLE +INACTIVE$/m);
    assert.match(r.stdout, /^ {2}test-worker +yes, \S+ ago +1 +\S+ +\S+$/m);
  });

  it('reads REDIS_URL and QUEUE_PREFIX from the env file; the environment wins over it', async () => {
    const file = path.join(tmp, 'postback.env');
    writeFileSync(file, `# written by the test\nREDIS_URL=${stack.redisServer.url}\nQUEUE_PREFIX="pb"\nPM2_INGEST_INSTANCES=2\n`);
    const fromFile = await ctl(['status', '--json'], { POSTBACK_ENV_FILE: file });
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(JSON.parse(fromFile.stdout).deadLetters, 2);
    const overridden = await ctl(['status'], { POSTBACK_ENV_FILE: file, REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    assert.equal(overridden.code, 1);
    assert.match(overridden.stderr, /cannot reach it/);
  });

  it('dead replay --all puts every dead letter back, and they are delivered', async () => {
    stack.receiver.handler = (req) => (req.url.startsWith('/slow') ? { delayMs: 45_000 } : { status: 200 });
    const r = await ctl(['dead', 'replay', '--all'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Replayed 2 dead letters (all): back in the queue with a fresh attempt budget.\n');
    const ok = await stack.waitForEvents('delivery_succeeded', 2);
    assert.deepEqual(ok.map((l) => String(l.url).replace(stack.endpoint, '')).sort(), ['/gone?n=1', '/gone?n=2']);
    const s = JSON.parse((await ctl(['status', '--json'], env)).stdout);
    assert.equal(s.deadLetters, 0);
    // Delivered, they left the live count: what is left is the retry and the slow one (if still in flight).
    assert.equal(s.live, s.retryScheduled + s.inFlight, 'the replayed postbacks left the live count when delivered');
  });
});

describe('postback-ctl dead letters', () => {
  let stack: Stack;
  let b: Receiver;
  let c: Receiver;
  let env: Record<string, string>;
  const hostOf = (r: Receiver | Stack) => `127.0.0.1:${r instanceof Stack ? r.receiver.port : r.port}`;
  before(async () => {
    stack = await Stack.start({ handler: () => ({ status: 404, body: 'no such user' }) });
    b = await Receiver.start(() => ({ status: 404 }));
    c = await Receiver.start(() => ({ status: 404 }));
    env = { REDIS_URL: stack.redisServer.url };
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/a?k={k}` }, data: [{ k: 'a1' }, { k: 'a2' }] });
    await stack.post({ endpoint: { method: 'POST', url: `${b.base}/b` }, data: [{ k: 'b1' }, { k: 'b2' }] });
    await stack.post({ endpoint: { method: 'GET', url: `${c.base}/c?k={k}` }, data: [{ k: 'c1' }, { k: 'c2' }] });
    await stack.waitForEvents('delivery_dead_lettered', 6);
  });
  after(async () => {
    await stack.stop();
    await b.close();
    await c.close();
  });

  it('dead list: a table, newest first, with host, attempts, reason and last status', async () => {
    const r = await ctl(['dead', 'list'], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^DEAD ID +POSTBACK ID +AGE +HOST +ATTEMPTS +REASON +LAST +DATA$/);
    const rows = lines.slice(1, 7);
    assert.equal(rows.length, 6);
    for (const row of rows) assert.match(row, /^\d+-\d+ +\d+-\d+:[01] +\S+ +127\.0\.0\.1:\d+ +1 +permanent_status +HTTP 404 +\{"k":"[abc][12]"\}$/);
    assert.match(rows[0]!, /c2/, 'newest first');
    assert.equal(lines.at(-1), '6 of 6, newest first.');
  });

  it('dead list --host --json: only that host, every field', async () => {
    const r = await ctl(['dead', 'list', '--host', hostOf(b), '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.total, 6);
    assert.equal(j.matched, 2);
    assert.deepEqual(j.letters.map((d: { data: { k: string } }) => d.data.k), ['b2', 'b1']);
    for (const d of j.letters) {
      assert.equal(d.host, hostOf(b));
      assert.equal(d.method, 'POST');
      assert.equal(d.url, `${b.base}/b`);
      assert.equal(d.reason, 'permanent_status');
      assert.equal(d.status, '404');
      assert.equal(d.attempts, 1);
      assert.ok(!Number.isNaN(Date.parse(d.failedAt)));
    }
  });

  it('dead list --limit and a filter matching nothing', async () => {
    const limited = await ctl(['dead', 'list', '--limit', '2'], env);
    assert.equal(limited.stdout.trimEnd().split('\n').length, 1 + 2 + 2);
    assert.match(limited.stdout, /\n2 of 6, newest first\.\n$/);
    const none = await ctl(['dead', 'list', '--host', 'nowhere.example'], env);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, 'No dead letters match (6 dead letters in all).\n');
  });

  it('dead purge refuses without --yes, then removes only the host asked for', async () => {
    const refused = await ctl(['dead', 'purge', '--host', hostOf(c)], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /would delete 2 dead letters \(host 127\.0\.0\.1:\d+\) for good; add --yes/);
    assert.equal((await stack.queue.listDeadLetters()).length, 6, 'nothing deleted');

    const r = await ctl(['dead', 'purge', '--host', hostOf(c), '--yes'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Purged 2 dead letters (host ${hostOf(c)}).\n`);
    const left = await stack.queue.listDeadLetters();
    assert.deepEqual(left.map((d) => JSON.parse(d.data).k).sort(), ['a1', 'a2', 'b1', 'b2']);
    assert.equal(c.requests.length, 2, 'purged letters are not delivered');
  });

  it('dead replay by dead-letter id, by postback id, then by host: each delivered once the endpoints answer 200', async () => {
    stack.receiver.handler = () => ({ status: 200 });
    b.handler = () => ({ status: 200 });
    const letters = await stack.queue.listDeadLetters();
    const a1 = letters.find((d) => JSON.parse(d.data).k === 'a1')!;
    const a2 = letters.find((d) => JSON.parse(d.data).k === 'a2')!;

    const one = await ctl(['dead', 'replay', a1.deadId], env);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, `Replayed 1 dead letter (${a1.deadId}): back in the queue with a fresh attempt budget.\n`);
    await stack.waitForEvents('delivery_succeeded', 1);

    const byPostback = await ctl(['dead', 'replay', a2.id, '--json'], env);
    assert.equal(byPostback.code, 0, byPostback.stderr);
    assert.deepEqual(JSON.parse(byPostback.stdout), { matched: 1, replayed: 1, skipped: 0 });
    await stack.waitForEvents('delivery_succeeded', 2);
    assert.deepEqual(stack.receiver.requests.slice(2).map((r) => r.url).sort(), ['/a?k=a1', '/a?k=a2']);
    const delivered = stack.events('delivery_succeeded');
    assert.deepEqual(delivered.map((l) => l.postbackId).sort(), [a1.id, a2.id].sort(), 'replayed postbacks keep their ids');

    const byHost = await ctl(['dead', 'replay', '--host', '127.0.0.1:' + b.port], env);
    assert.equal(byHost.code, 0, byHost.stderr);
    assert.match(byHost.stdout, /^Replayed 2 dead letters \(host 127\.0\.0\.1:\d+\)/);
    await b.waitFor(4);
    assert.deepEqual(b.requests.slice(2).map((r) => JSON.parse(r.body).k).sort(), ['b1', 'b2']);
    await until('no dead letters left', async () => (await stack.queue.status()).deadLetters === 0 && (await stack.queue.status()).live === 0);
  });

  it('dead replay and purge of an id that is not there exit 1', async () => {
    for (const args of [['dead', 'replay', '1-0'], ['dead', 'purge', '1-0:0', '--yes']]) {
      const r = await ctl(args, env);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^postback-ctl: no dead letter 1-0/);
    }
  });

  describe('logs tail', () => {
    let file: string;
    before(() => {
      // The worker's own log records from the deliveries above, as pm2 writes them: one JSON per line.
      file = path.join(tmp, 'delivery.log');
      const lines = stack.logs.map((l) => JSON.stringify(l));
      writeFileSync(file, [...lines.slice(0, 2), 'Error: a stack trace pm2 caught', ...lines.slice(2)].join('\n') + '\n');
    });

    it('renders every line compactly; lines that are not JSON pass through', async () => {
      const r = await ctl(['logs', 'tail', '-n', '1000', '--file', file]);
      assert.equal(r.code, 0, r.stderr);
      const out = r.stdout.trimEnd().split('\n');
      assert.equal(out.length, stack.logs.length + 1);
      assert.ok(out.includes('Error: a stack trace pm2 caught'));
      const dead = out.filter((l) => /^\S* *DEAD /.test(l.trimStart()));
      assert.equal(dead.length, 6);
      assert.ok(out.some((l) => /OK +200 +\S+ +1\/5 +GET +http:\/\/127\.0\.0\.1:\d+\/a\?k=a1 +\d+-\d+:0$/.test(l)), out.join('\n'));
    });

    it('--status and --host keep only matching attempts; -n the last N; --json the lines as they are', async () => {
      const dead = await ctl(['logs', 'tail', '--file', file, '--status', '4xx']);
      assert.equal(dead.stdout.trimEnd().split('\n').length, 6);
      assert.ok(dead.stdout.trimEnd().split('\n').every((l) => / DEAD +404 /.test(l)));
      const hostB = await ctl(['logs', 'tail', '--file', file, '--host', hostOf(b), '--status', '2xx', '--json']);
      const recs = hostB.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
      assert.equal(recs.length, 2);
      assert.ok(recs.every((x) => x.event === 'delivery_succeeded' && x.endpointHost === hostOf(b)));
      const last = await ctl(['logs', 'tail', '--file', file, '-n', '1', '--status', '404']);
      assert.equal(last.stdout.trimEnd().split('\n').length, 1);
      assert.match(last.stdout, /c2|b2|a2|c1|b1|a1/);
    });

    it('reads delivery.log in POSTBACK_LOG_DIR by default; a missing file exits 1', async () => {
      const r = await ctl(['logs', 'tail', '-n', '3'], { POSTBACK_LOG_DIR: tmp });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trimEnd().split('\n').length, 3);
      const missing = await ctl(['logs', 'tail'], { POSTBACK_LOG_DIR: path.join(tmp, 'nowhere') });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /cannot read .*nowhere\/delivery\.log: ENOENT/);
    });

    it('-f follows new lines, across a rotation, until SIGTERM', async () => {
      const ok = stack.events('delivery_succeeded');
      const failed = stack.events('delivery_dead_lettered');
      const followed = path.join(tmp, 'follow.log');
      writeFileSync(followed, `${JSON.stringify(stack.logs[0])}\n${JSON.stringify(ok[2])}\n`);
      const proc = start(['logs', 'tail', '-f', '-n', '1', '--file', followed, '--status', '2xx'], {});
      let stdout = '';
      proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
      try {
        // The last matching line first: then it is following, and appended lines appear (those that match).
        await until('the last line', () => stdout.includes(String(ok[2]!.postbackId)), 30_000);
        appendFileSync(followed, `${JSON.stringify(failed[0])}\n${JSON.stringify(ok[0])}\n`);
        await until('the appended line', () => stdout.includes(String(ok[0]!.postbackId)));
        // logrotate: the file is moved away and a new one created.
        renameSync(followed, `${followed}.1`);
        writeFileSync(followed, `${JSON.stringify(ok[1])}\n`);
        await until('the line in the new file', () => stdout.includes(String(ok[1]!.postbackId)));
        assert.equal(stdout.trimEnd().split('\n').length, 3, stdout);
        assert.ok(!stdout.includes(' DEAD '));
      } finally {
        proc.kill('SIGTERM');
      }
      assert.equal(await exited, 0);
    });
  });
});

describe('postback-ctl consumers prune', () => {
  let stack: Stack;
  let env: Record<string, string>;
  let alive: AppProcess;
  before(async () => {
    stack = await Stack.start();
    env = { REDIS_URL: stack.redisServer.url };
    // Three names a worker could have left behind: one that settled what it read (holds nothing), one
    // that read an entry and never settled it (a crashed worker's), and the test's stopped worker; and
    // a live worker process with nothing to do, whose idle time grows on Redis 7.0 (its blocking reads
    // return nothing) but whose heartbeat says it is alive.
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/p?n={n}` }, data: [{ n: 1 }] });
    await stack.receiver.waitFor(1);
    await stack.stopWorker();
    const admin = stack.redisServer.client();
    try {
      await stack.queue.ensureGroup();
      const k = stack.queue.keys.stream;
      await admin.xadd(k, '*', 'x', '[{}]');
      await admin.xadd(k, '*', 'x', '[{}]');
      const [[, [[first]]]] = (await admin.xreadgroup('GROUP', 'delivery', 'gone-1', 'COUNT', 1, 'STREAMS', k, '>')) as any;
      await admin.xack(k, 'delivery', first);
      await admin.xreadgroup('GROUP', 'delivery', 'crashed-1', 'COUNT', 1, 'STREAMS', k, '>');
    } finally {
      admin.disconnect();
    }
    alive = AppProcess.start('delivery', {
      REDIS_URL: stack.redisServer.url,
      DELIVERY_CONSUMER_NAME: 'alive-1',
      DELIVERY_BLOCK_MS: '100',
      DELIVERY_HEARTBEAT_INTERVAL_MS: '1000',
    });
    await alive.waitForEvent('worker_started');
  });
  after(async () => {
    await alive?.stop();
    await stack?.stop();
  });

  const status = async () => JSON.parse((await ctl(['status', '--json'], env)).stdout) as { consumers: { name: string; idleMs: number; heartbeatAgeMs?: number }[] };
  const names = async () => (await status()).consumers.map((c) => c.name).sort();

  it('status shows the live worker alive by its heartbeat, the others not', async () => {
    await new Promise((r) => setTimeout(r, 1500)); // idle a while: more than a heartbeat interval
    const { consumers } = await status();
    const by = new Map(consumers.map((c) => [c.name, c]));
    assert.ok(by.get('alive-1')!.heartbeatAgeMs! <= 2000, JSON.stringify(by.get('alive-1')));
    for (const n of ['gone-1', 'crashed-1', 'test-worker']) assert.equal(by.get(n)!.heartbeatAgeMs, undefined, n);
    const text = (await ctl(['status'], env)).stdout;
    assert.match(text, /^ {2}alive-1 +yes, \S+ ago +0 /m);
    assert.match(text, /^ {2}gone-1 +no +0 /m);
  });

  it('without --yes lists the idle names that hold nothing and have no live worker, deletes nothing, exits 2', async () => {
    const r = await ctl(['consumers', 'prune', '--idle', '0s', '--json'], env);
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).matched.sort(), ['gone-1', 'test-worker']);
    assert.match(r.stderr, /would delete 2 consumers .* add --yes/);
    assert.deepEqual(await names(), ['alive-1', 'crashed-1', 'gone-1', 'test-worker']);
  });

  it('a longer --idle than they have matches none', async () => {
    const r = await ctl(['consumers', 'prune', '--idle', '1h', '--yes'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Deleted 0 consumers/);
    assert.deepEqual(await names(), ['alive-1', 'crashed-1', 'gone-1', 'test-worker']);
  });

  it('with --yes deletes them, never the name that holds an entry nor a live worker', async () => {
    const r = await ctl(['consumers', 'prune', '--idle', '0s', '--yes'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Deleted 2 consumers holding nothing, with no live worker, and idle for 0ms or more: (gone-1, test-worker|test-worker, gone-1)\./);
    assert.deepEqual(await names(), ['alive-1', 'crashed-1']);
    const s = JSON.parse((await ctl(['status', '--json'], env)).stdout);
    assert.equal(s.inFlight, 1, "the crashed worker's entry is still pending, for XAUTOCLAIM");
    assert.equal(s.oldestInFlight.consumer, 'crashed-1');
  });
});
