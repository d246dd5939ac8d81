import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommand, UsageError, USAGE, type Command } from '../../src/ctl/args.js';

describe('parseCommand', () => {
  const table: [string[], Command][] = [
    [['status'], { cmd: 'status', json: false }],
    [['status', '--json'], { cmd: 'status', json: true }],
    [['dead', 'list'], { cmd: 'dead-list', limit: 20, filter: {}, json: false }],
    [['dead', 'list', '--limit', '5', '--host', 'partner.example', '--reason', 'attempts_exhausted', '--json'], { cmd: 'dead-list', limit: 5, filter: { host: 'partner.example', reason: 'attempts_exhausted' }, json: true }],
    [['dead', 'replay', '1795584200000-0'], { cmd: 'dead-replay', target: { ids: ['1795584200000-0'] }, json: false }],
    [['dead', 'replay', '1795584176858-0:1', '1795584200000-0'], { cmd: 'dead-replay', target: { ids: ['1795584176858-0:1', '1795584200000-0'] }, json: false }],
    [['dead', 'replay', '--all'], { cmd: 'dead-replay', target: { filter: {} }, json: false }],
    [['dead', 'replay', '--host', 'h:8080'], { cmd: 'dead-replay', target: { filter: { host: 'h:8080' } }, json: false }],
    [['dead', 'replay', '--reason', 'permanent_status', '--host', 'h'], { cmd: 'dead-replay', target: { filter: { host: 'h', reason: 'permanent_status' } }, json: false }],
    [['dead', 'purge', '--all'], { cmd: 'dead-purge', target: { filter: {} }, yes: false, json: false }],
    [['dead', 'purge', '--host', 'h', '--yes'], { cmd: 'dead-purge', target: { filter: { host: 'h' } }, yes: true, json: false }],
    [['dead', 'purge', '1-0', '-y', '--json'], { cmd: 'dead-purge', target: { ids: ['1-0'] }, yes: true, json: true }],
    [['consumers', 'prune'], { cmd: 'consumers-prune', minIdleMs: 3_600_000, yes: false, json: false }],
    [['consumers', 'prune', '--idle', '30m', '--yes'], { cmd: 'consumers-prune', minIdleMs: 1_800_000, yes: true, json: false }],
    [['consumers', 'prune', '--idle', '2d', '-y', '--json'], { cmd: 'consumers-prune', minIdleMs: 172_800_000, yes: true, json: true }],
    [['consumers', 'prune', '--idle', '90'], { cmd: 'consumers-prune', minIdleMs: 90_000, yes: false, json: false }],
    [['consumers', 'prune', '--idle', '0s'], { cmd: 'consumers-prune', minIdleMs: 0, yes: false, json: false }],
    [['logs', 'tail'], { cmd: 'logs-tail', lines: 20, follow: false, json: false }],
    [['logs', 'tail', '-f', '-n', '0', '--file', '/tmp/d.log', '--status', '4xx,5xx', '--host', 'h', '--json'], { cmd: 'logs-tail', lines: 0, follow: true, file: '/tmp/d.log', status: '4xx,5xx', host: 'h', json: true }],
  ];
  for (const [argv, want] of table) it(argv.join(' '), () => assert.deepEqual(parseCommand(argv), want));

  const help: [string[], RegExp][] = [
    [['--help'], /^Usage: postback-ctl <command>/],
    [['-h'], /^Usage: postback-ctl <command>/],
    [['help'], /^Usage: postback-ctl <command>/],
    [['help', 'dead', 'replay'], /^Usage: postback-ctl dead replay/],
    [['status', '--help'], /^Usage: postback-ctl status/],
    [['dead', '--help'], /^Usage: postback-ctl dead list\|replay\|purge/],
    [['dead', 'list', '-h'], /^Usage: postback-ctl dead list/],
    [['logs', 'tail', '--help'], /^Usage: postback-ctl logs tail/],
    [['consumers', '--help'], /^Usage: postback-ctl consumers prune/],
  ];
  for (const [argv, want] of help) {
    it(`help: ${argv.join(' ')}`, () => {
      const c = parseCommand(argv);
      assert.equal(c.cmd, 'help');
      assert.match((c as { text: string }).text, want);
    });
  }

  const bad: [string[], RegExp][] = [
    [[], /no command given/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['dead'], /"dead" needs a subcommand/],
    [['dead', 'eat'], /unknown command "dead eat"/],
    [['status', 'extra'], /unexpected argument "extra"/],
    [['status', '--limit', '3'], /Unknown option '--limit'/],
    [['dead', 'list', '--limit=-1'], /--limit must be a whole number/],
    [['dead', 'list', '--limit', '2.5'], /--limit must be a whole number/],
    [['dead', 'list', '--host', ' '], /--host needs a value/],
    [['dead', 'replay'], /say which dead letters/],
    [['dead', 'replay', '--all', '--host', 'h'], /either ids, or --all, or --host\/--reason/],
    [['dead', 'replay', '1-0', '--all'], /either ids/],
    [['dead', 'replay', 'abc'], /"abc" is not a dead-letter id/],
    [['dead', 'purge', '--yes'], /say which dead letters/],
    [['logs', 'tail', '--status', 'bad'], /bad --status "bad"/],
    [['logs', 'tail', '-n', 'x'], /--lines must be a whole number/],
    [['logs', 'tail', '--file'], /argument missing/],
    [['consumers'], /"consumers" needs a subcommand/],
    [['consumers', 'prune', '--idle', '1w'], /--idle must be a duration like 30m/],
    [['consumers', 'prune', '--idle=-5m'], /--idle must be a duration/],
  ];
  for (const [argv, want] of bad) {
    it(`usage error: ${argv.join(' ') || '(nothing)'}`, () => {
      assert.throws(() => parseCommand(argv), (err: unknown) => {
        assert.ok(err instanceof UsageError);
        assert.match(err.message, want);
        assert.match(err.usage, /^Usage: postback-ctl/);
        return true;
      });
    });
  }

  it('the usage names every command', () => {
    for (const c of ['status', 'dead list', 'dead replay', 'dead purge', 'logs tail', 'consumers prune']) assert.ok(USAGE.includes(`  ${c}`), c);
  });
});
