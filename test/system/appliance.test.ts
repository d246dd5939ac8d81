/**
 * The appliance as a sysadmin gets it: the Ansible playbook passes ansible-lint and a syntax check, and
 * provisions a Debian 12 host booted with systemd (a systemd-nspawn container) into a working, supervised,
 * reboot-safe system. The scenarios are test/system/nspawn-e2e.sh and quickstart-e2e.sh (also runnable
 * by hand); this file runs them and fails with their output. The same scenario in a real VM, test/system/qemu-e2e.sh, is too slow
 * for every run and is run before releases (docs/operations.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const repo = path.resolve(import.meta.dirname, '../..');
const ansibleDir = path.join(repo, 'ansible');

function run(cmd: string, args: string[], opts: { cwd: string; timeoutMs: number }) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', timeout: opts.timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { status: r.status, signal: r.signal, error: r.error, output };
}

test('ansible-lint passes (production profile)', () => {
  const r = run('ansible-lint', ['--offline', '--profile', 'production', 'site.yml'], { cwd: ansibleDir, timeoutMs: 300_000 });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, r.output);
});

test('the playbook passes --syntax-check for both inventories', () => {
  for (const inv of ['inventories/local/hosts.yml', 'inventories/production/hosts.yml']) {
    const r = run('ansible-playbook', ['-i', inv, 'site.yml', '--syntax-check'], { cwd: ansibleDir, timeoutMs: 120_000 });
    assert.equal(r.status, 0, `${inv}:\n${r.output}`);
  }
});

test('systemd-nspawn Debian 12: provision, idempotence, sample through nginx, reboot, hard kill, monit', () => {
  // About 4 minutes on a quiet 2-core machine; 20 and more when other jobs load it (three playbook runs).
  const r = run('bash', [path.join(repo, 'test/system/nspawn-e2e.sh')], { cwd: repo, timeoutMs: 40 * 60_000 });
  process.stdout.write(r.output.replace(/^/gm, '    | '));
  assert.equal(r.signal, null, `killed by ${r.signal} (timeout?)`);
  assert.equal(r.status, 0, 'nspawn-e2e.sh failed; its output is above');
  assert.match(r.output, /nspawn e2e passed/);
});

test("the README's quick start, command 1 verbatim, on a Debian 12 without systemd: the sample is delivered", () => {
  const r = run('bash', [path.join(repo, 'test/system/quickstart-e2e.sh')], { cwd: repo, timeoutMs: 20 * 60_000 });
  process.stdout.write(r.output.replace(/^/gm, '    | '));
  assert.equal(r.signal, null, `killed by ${r.signal} (timeout?)`);
  assert.equal(r.status, 0, 'quickstart-e2e.sh failed; its output is above');
  assert.match(r.output, /quick start e2e passed/);
});
