import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_POLICY,
  PolicySettingError,
  checkAddress,
  checkPort,
  checkUrlTarget,
  createDestinationPolicy,
  parsePorts,
} from '../../src/shared/destination-policy.js';

describe('checkAddress with the default policy', () => {
  // [address, the reason it is refused, or null when it is allowed]
  const table: [string, string | null][] = [
    // public unicast: allowed
    ['93.184.216.34', null],
    ['8.8.8.8', null],
    ['2606:4700:4700::1111', null],
    ['[2606:4700:4700::1111]', null],
    // loopback, every spelling a socket or resolver can give
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    // RFC 1918
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['172.32.0.1', null],
    // link-local: cloud metadata
    ['169.254.169.254', 'linkLocal'],
    ['fe80::1', 'linkLocal'],
    ['fe80::1%eth0', 'linkLocal'],
    // shared address space (CGNAT)
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.127.255.255', 'carrierGradeNat'],
    ['100.128.0.1', null],
    // multicast, unspecified, broadcast
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    // reserved and documentation ranges
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['198.51.100.1', 'reserved'],
    ['203.0.113.1', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    // IPv6 unique-local and other special-purpose IPv6
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456:789a::1', 'uniqueLocal'],
    ['fec0::1', 'deprecatedSiteLocal'],
    ['100::1', 'discard'],
    // IPv4 embedded in IPv6: judged by the IPv4 address
    ['::ffff:127.0.0.1', 'ipv4Mapped:loopback'],
    ['::ffff:7f00:1', 'ipv4Mapped:loopback'],
    ['::ffff:169.254.169.254', 'ipv4Mapped:linkLocal'],
    ['::ffff:10.1.2.3', 'ipv4Mapped:private'],
    ['::ffff:8.8.8.8', null],
    ['::7f00:1', 'ipv4Compatible:loopback'],
    ['::a9fe:a9fe', 'ipv4Compatible:linkLocal'],
    ['::ffff:0:7f00:1', 'rfc6145:loopback'],
    ['64:ff9b::7f00:1', 'rfc6052:loopback'],
    ['64:ff9b::a9fe:a9fe', 'rfc6052:linkLocal'],
    ['64:ff9b::808:808', null],
    ['64:ff9b:1:7f00:0:100::', 'rfc6052:loopback'],
    ['64:ff9b:1:808:8:800::', null],
    ['2002:7f00:1::1', '6to4:loopback'],
    ['2002:a00:1::', '6to4:private'],
    ['2002:808:808::1', null],
    // Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted: 0x80ff:0xfffe)
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'teredo:loopback'],
    // Teredo with a private server address
    ['2001:0:a00:1:8000:63bf:3fff:fdd2', 'teredo:private'],
    // not an address
    ['localhost', 'not_an_address'],
    ['2130706433', 'not_an_address'],
    ['0177.0.0.1', 'not_an_address'],
    ['', 'not_an_address'],
  ];
  for (const [address, reason] of table) {
    it(`${address || '(empty)'} -> ${reason ?? 'allowed'}`, () => {
      const v = checkAddress(DEFAULT_POLICY, address);
      assert.deepEqual(v, reason === null ? { allowed: true } : { allowed: false, reason });
    });
  }
});

describe('checkAddress with settings', () => {
  const policy = createDestinationPolicy({
    allowNetworks: '127.0.0.0/8, ::1/128, 10.20.0.0/16',
    denyNetworks: '8.8.8.0/24,10.20.30.0/24,2606:4700::/32',
    allowHosts: 'partner.internal, *.corp.example',
  });
  const table: [string, string | undefined, string | null][] = [
    ['127.0.0.1', undefined, null],
    ['127.0.0.2', undefined, null],
    ['::1', undefined, null],
    // an allowed IPv4 network covers the IPv4-mapped spelling of its addresses (the same connection)
    ['::ffff:127.0.0.1', undefined, null],
    // ... but not the tunnelled forms, which go somewhere else
    ['2002:7f00:1::1', undefined, '6to4:loopback'],
    ['10.20.1.1', undefined, null],
    ['10.21.1.1', undefined, 'private'],
    // deny wins over allow, in every spelling
    ['10.20.30.4', undefined, 'denied_network'],
    ['::ffff:10.20.30.4', undefined, 'denied_network'],
    ['8.8.8.8', undefined, 'denied_network'],
    ['64:ff9b::808:808', undefined, 'denied_network'],
    ['2606:4700:4700::1111', undefined, 'denied_network'],
    ['8.8.4.4', undefined, null],
    // allowed host names: whatever they resolve to, except denied networks
    ['192.168.1.10', 'partner.internal', null],
    ['192.168.1.10', 'PARTNER.internal.', null],
    ['192.168.1.10', 'a.b.corp.example', null],
    ['192.168.1.10', 'corp.example', 'private'],
    ['192.168.1.10', 'other.internal', 'private'],
    ['10.20.30.4', 'partner.internal', 'denied_network'],
  ];
  for (const [address, host, reason] of table) {
    it(`${address} (${host ?? 'no name'}) -> ${reason ?? 'allowed'}`, () => {
      assert.deepEqual(checkAddress(policy, address, host), reason === null ? { allowed: true } : { allowed: false, reason });
    });
  }
});

describe('checkPort', () => {
  it('allows any port 1-65535 by default, never 0', () => {
    assert.deepEqual(checkPort(DEFAULT_POLICY, 80), { allowed: true });
    assert.deepEqual(checkPort(DEFAULT_POLICY, 65535), { allowed: true });
    assert.deepEqual(checkPort(DEFAULT_POLICY, 0), { allowed: false, reason: 'invalid_port' });
    assert.deepEqual(checkPort(DEFAULT_POLICY, 65536), { allowed: false, reason: 'invalid_port' });
  });
  it('restricts to DELIVERY_ALLOW_PORTS when set', () => {
    const p = createDestinationPolicy({ allowPorts: '80,443,8000-8002' });
    for (const port of [80, 443, 8000, 8001, 8002]) assert.deepEqual(checkPort(p, port), { allowed: true }, String(port));
    for (const port of [22, 6379, 7999, 8003]) assert.deepEqual(checkPort(p, port), { allowed: false, reason: 'port_not_allowed' }, String(port));
  });
  it('parses port lists', () => {
    assert.equal(parsePorts(''), undefined);
    assert.deepEqual([...parsePorts(' 1 ,3-4')!], [1, 3, 4]);
    for (const bad of ['0', '65536', 'http', '5-3', '1-2-3']) assert.throws(() => parsePorts(bad), /not a port/, bad);
  });
});

describe('checkUrlTarget (what ingest can tell before any DNS)', () => {
  const loopback = createDestinationPolicy({ allowNetworks: '127.0.0.0/8' });
  // [url, policy, reason or null]
  const table: [string, 'default' | 'loopback', string | null][] = [
    ['http://example.com/x', 'default', null],
    ['http://{sub}.example.com/x', 'default', null],
    ['http://127.0.0.1/x', 'default', 'loopback'],
    ['http://127.0.0.1:8080/x', 'loopback', null],
    // the WHATWG parser turns decimal, octal and hex IPv4 spellings into the dotted address
    ['http://2130706433/', 'default', 'loopback'],
    ['http://0177.0.0.1/', 'default', 'loopback'],
    ['http://0x7f.1/', 'default', 'loopback'],
    ['http://127.1/', 'default', 'loopback'],
    ['http://0/', 'default', 'unspecified'],
    ['http://[::1]/', 'default', 'loopback'],
    ['http://[::ffff:127.0.0.1]/', 'default', 'ipv4Mapped:loopback'],
    ['http://[::ffff:7f00:1]/', 'loopback', null],
    ['http://169.254.169.254/latest/meta-data/', 'default', 'linkLocal'],
    ['http://[fd00::1]/', 'default', 'uniqueLocal'],
    ['http://localhost/', 'default', 'loopback'],
    ['http://LocalHost./', 'default', 'loopback'],
    ['http://api.localhost:3000/', 'default', 'loopback'],
    ['http://localhost/', 'loopback', null],
    ['http://example.com:0/', 'default', 'invalid_port'],
    ['http://8.8.8.8/', 'default', null],
  ];
  for (const [url, which, reason] of table) {
    it(`${url} (${which}) -> ${reason ?? 'allowed'}`, () => {
      const { verdict } = checkUrlTarget(which === 'default' ? DEFAULT_POLICY : loopback, new URL(url));
      assert.deepEqual(verdict, reason === null ? { allowed: true } : { allowed: false, reason });
    });
  }
});

describe('createDestinationPolicy', () => {
  const bad: [Parameters<typeof createDestinationPolicy>[0], string][] = [
    [{ allowNetworks: '127.0.0.0/33' }, 'allowNetworks'],
    [{ allowNetworks: 'localhost' }, 'allowNetworks'],
    // a setting means what it says: 127.1 is not accepted as a spelling of 127.0.0.1
    [{ denyNetworks: '127.1' }, 'denyNetworks'],
    [{ allowHosts: 'bad host' }, 'allowHosts'],
    [{ allowPorts: '0' }, 'allowPorts'],
  ];
  for (const [settings, setting] of bad) {
    it(`refuses ${JSON.stringify(settings)}, naming ${setting}`, () => {
      assert.throws(() => createDestinationPolicy(settings), (err) => err instanceof PolicySettingError && err.setting === setting);
    });
  }
  it('takes single addresses as /32 and /128', () => {
    const p = createDestinationPolicy({ allowNetworks: '127.0.0.2,::1' });
    assert.deepEqual(checkAddress(p, '127.0.0.2'), { allowed: true });
    assert.deepEqual(checkAddress(p, '127.0.0.1'), { allowed: false, reason: 'loopback' });
    assert.deepEqual(checkAddress(p, '::1'), { allowed: true });
  });
});
