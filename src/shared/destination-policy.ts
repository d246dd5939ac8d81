/**
 * Where deliveries may connect: the destination policy. Pure (no DNS, no sockets): the delivery side
 * asks it about every address a connection is about to be made to or was made to (src/delivery/
 * destination-guard.ts), ingest about templates whose host is a literal address (src/ingest/schemas.ts).
 *
 * By default an address is refused when it is not a public unicast address: loopback, RFC 1918 private,
 * link-local (169.254.0.0/16 and fe80::/10: cloud metadata services live there), shared/CGNAT
 * (100.64.0.0/10), multicast, unspecified, broadcast, the IANA reserved and documentation ranges, IPv6
 * unique-local (fc00::/7) and the other special-purpose IPv6 ranges; IPv6 addresses that embed an IPv4
 * address (IPv4-mapped, IPv4-compatible, SIIT, NAT64, 6to4, Teredo) are judged by the IPv4 address they
 * carry too. Range names are ipaddr.js's `range()` names.
 *
 * The operator widens it with networks (DELIVERY_ALLOW_NETWORKS) or host names (DELIVERY_ALLOW_HOSTS),
 * narrows it with more networks (DELIVERY_DENY_NETWORKS, which win over everything), and may restrict
 * ports (DELIVERY_ALLOW_PORTS). Order of the decision: denied network -> refused; allowed network or
 * allowed host name -> allowed; special-purpose range -> refused; anything else -> allowed.
 */
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [Address, number];

export interface DestinationPolicy {
  /** Networks always allowed (unless denied), e.g. 127.0.0.0/8 for a partner on this machine. */
  readonly allowNetworks: readonly Cidr[];
  /** Networks always refused, on top of the default ranges; they win over everything. */
  readonly denyNetworks: readonly Cidr[];
  /** Host names (lower case, no trailing dot) whose addresses are allowed whatever they are; `*.x` matches below x. */
  readonly allowHosts: readonly string[];
  /** Ports deliveries may connect to; undefined = any port (1-65535). */
  readonly allowPorts: ReadonlySet<number> | undefined;
}

export interface PolicySettings {
  /** Comma-separated CIDRs (`127.0.0.0/8,::1/128`) or single addresses. */
  readonly allowNetworks?: string;
  readonly denyNetworks?: string;
  /** Comma-separated host names, `*.example.com` for every name below example.com. */
  readonly allowHosts?: string;
  /** Comma-separated ports and ranges (`80,443,8000-8999`); empty = any. */
  readonly allowPorts?: string;
}

export type Verdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

const ALLOWED: Verdict = Object.freeze({ allowed: true });
const refused = (reason: string): Verdict => ({ allowed: false, reason });

function splitList(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** `10.0.0.0/8`, `::1/128`, or one address (a /32 or /128). Throws on anything else. */
export function parseNetwork(text: string): Cidr {
  if (text.includes('/')) {
    const [addr, bits] = ipaddr.parseCIDR(text);
    return [addr, bits];
  }
  if (!ipaddr.isValid(text) || !isCanonicalLiteral(text)) throw new Error(`not an address or CIDR: ${text}`);
  const addr = ipaddr.parse(text);
  return [addr, addr.kind() === 'ipv4' ? 32 : 128];
}

/**
 * Whether `text` is an address as people and DNS write it: four decimal parts for IPv4 (ipaddr.js also
 * takes `127.1`, `0x7f.1` and `2130706433`, which would make a typo in a setting mean something).
 */
function isCanonicalLiteral(text: string): boolean {
  return text.includes(':') || ipaddr.IPv4.isValidFourPartDecimal(text);
}

export function parsePorts(text: string | undefined): Set<number> | undefined {
  const items = splitList(text);
  if (items.length === 0) return undefined;
  const ports = new Set<number>();
  for (const item of items) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(item);
    const from = m ? Number(m[1]) : NaN;
    const to = m?.[2] !== undefined ? Number(m[2]) : from;
    if (!m || from < 1 || to > 65535 || to < from) throw new Error(`not a port or port range: ${item}`);
    for (let p = from; p <= to; p++) ports.add(p);
  }
  return ports;
}

function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** A bad item in one of the settings: `setting` names which (allowNetworks, denyNetworks, ...). */
export class PolicySettingError extends Error {
  constructor(
    readonly setting: keyof PolicySettings,
    message: string,
  ) {
    super(message);
  }
}

function parseSetting<T>(setting: keyof PolicySettings, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new PolicySettingError(setting, err instanceof Error ? err.message : String(err));
  }
}

/** Build a policy from its settings; throws a PolicySettingError naming the setting and the bad item. */
export function createDestinationPolicy(s: PolicySettings = {}): DestinationPolicy {
  const hosts = parseSetting('allowHosts', () =>
    splitList(s.allowHosts).map((item) => {
      const h = normalizeHost(item);
      if (!/^(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$/.test(h)) throw new Error(`not a host name: ${item}`);
      return h;
    }),
  );
  return Object.freeze({
    allowNetworks: Object.freeze(parseSetting('allowNetworks', () => splitList(s.allowNetworks).map(parseNetwork))),
    denyNetworks: Object.freeze(parseSetting('denyNetworks', () => splitList(s.denyNetworks).map(parseNetwork))),
    allowHosts: Object.freeze(hosts),
    allowPorts: parseSetting('allowPorts', () => parsePorts(s.allowPorts)),
  });
}

/** The default policy: special-purpose ranges refused, nothing else configured. */
export const DEFAULT_POLICY: DestinationPolicy = createDestinationPolicy();

function matches(addr: Address, nets: readonly Cidr[]): boolean {
  for (const [net, bits] of nets) {
    if (net.kind() === addr.kind() && addr.match(net as never, bits)) return true;
  }
  return false;
}

function ipv4FromParts(hi: number, lo: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

/**
 * The IPv4 addresses an IPv6 address carries, with the name of the form: IPv4-mapped (::ffff:a.b.c.d),
 * IPv4-compatible (::a.b.c.d, deprecated), SIIT (::ffff:0:a.b.c.d), NAT64 (64:ff9b::/96, and the
 * local-use 64:ff9b:1::/48), 6to4 (2002:AABB:CCDD::/48) and Teredo (server and client address).
 */
export function embeddedIPv4(addr: ipaddr.IPv6): { form: string; ipv4: ipaddr.IPv4 }[] {
  const p = addr.parts;
  const zeros = (from: number, to: number) => p.slice(from, to).every((x) => x === 0);
  const out: { form: string; ipv4: ipaddr.IPv4 }[] = [];
  if (zeros(0, 5) && p[5] === 0xffff) out.push({ form: 'ipv4Mapped', ipv4: ipv4FromParts(p[6]!, p[7]!) });
  else if (zeros(0, 6) && (p[6] !== 0 || p[7]! > 1)) out.push({ form: 'ipv4Compatible', ipv4: ipv4FromParts(p[6]!, p[7]!) });
  else if (zeros(0, 4) && p[4] === 0xffff && p[5] === 0) out.push({ form: 'rfc6145', ipv4: ipv4FromParts(p[6]!, p[7]!) });
  else if (p[0] === 0x64 && p[1] === 0xff9b && zeros(2, 6)) out.push({ form: 'rfc6052', ipv4: ipv4FromParts(p[6]!, p[7]!) });
  else if (p[0] === 0x64 && p[1] === 0xff9b && p[2] === 1) {
    // RFC 8215 local-use prefix, /48: the IPv4 address sits in bits 48-63 and 72-87 (RFC 6052 2.2).
    out.push({ form: 'rfc6052', ipv4: ipv4FromParts(p[3]!, ((p[4]! & 0xff) << 8) | (p[5]! >> 8)) });
  } else if (p[0] === 0x2002) out.push({ form: '6to4', ipv4: ipv4FromParts(p[1]!, p[2]!) });
  else if (p[0] === 0x2001 && p[1] === 0) {
    out.push({ form: 'teredo', ipv4: ipv4FromParts(p[2]!, p[3]!) });
    out.push({ form: 'teredo', ipv4: ipv4FromParts(p[6]! ^ 0xffff, p[7]! ^ 0xffff) });
  }
  return out;
}

/** The special-purpose range an address is in, or undefined for a public unicast address. */
export function specialRange(addr: Address): string | undefined {
  if (addr.kind() === 'ipv4') {
    const r = addr.range();
    return r === 'unicast' ? undefined : r;
  }
  const v6 = addr as ipaddr.IPv6;
  const embedded = embeddedIPv4(v6);
  if (embedded.length > 0) {
    // The embedded address decides: ::ffff:127.0.0.1 is loopback, 64:ff9b::8.8.8.8 is a public host.
    for (const { form, ipv4 } of embedded) {
      const r = specialRange(ipv4);
      if (r) return `${form}:${r}`;
    }
    return undefined;
  }
  const r = v6.range();
  return r === 'unicast' ? undefined : r;
}

/** Parse an address as sockets and DNS give it (IPv6 with or without brackets or a zone id). */
export function parseAddress(text: string): Address | undefined {
  let t = text;
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  if (!ipaddr.isValid(t) || !isCanonicalLiteral(t)) return undefined;
  return ipaddr.parse(t);
}

function hostAllowed(policy: DestinationPolicy, host: string | undefined): boolean {
  if (!host || policy.allowHosts.length === 0) return false;
  const h = normalizeHost(host);
  for (const pattern of policy.allowHosts) {
    if (pattern === h) return true;
    if (pattern.startsWith('*.') && h.endsWith(pattern.slice(1))) return true;
  }
  return false;
}

/**
 * May a delivery connect to `address`? `host` is the name it was resolved from (for DELIVERY_ALLOW_HOSTS),
 * when there was one. The reason of a refusal names the range (`loopback`, `private`,
 * `ipv4Mapped:linkLocal`, `denied_network`, `not_an_address`).
 */
export function checkAddress(policy: DestinationPolicy, address: string, host?: string): Verdict {
  const addr = parseAddress(address);
  if (!addr) return refused('not_an_address');
  const v4 = addr.kind() === 'ipv6' ? embeddedIPv4(addr as ipaddr.IPv6).map((e) => e.ipv4) : [];
  if (matches(addr, policy.denyNetworks) || v4.some((a) => matches(a, policy.denyNetworks))) return refused('denied_network');
  // An IPv4-mapped address is a connection to the IPv4 address itself: an allowed IPv4 network covers it.
  const mapped = addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() ? (addr as ipaddr.IPv6).toIPv4Address() : undefined;
  if (matches(addr, policy.allowNetworks) || (mapped && matches(mapped, policy.allowNetworks))) return ALLOWED;
  if (hostAllowed(policy, host)) return ALLOWED;
  const range = specialRange(addr);
  return range ? refused(range) : ALLOWED;
}

/** May a delivery connect to this TCP port? Port 0 never. */
export function checkPort(policy: DestinationPolicy, port: number): Verdict {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return refused('invalid_port');
  if (policy.allowPorts && !policy.allowPorts.has(port)) return refused('port_not_allowed');
  return ALLOWED;
}

/** The port a URL connects to: its own, or its scheme's. */
export function urlPort(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/**
 * What ingest can tell about a URL before any DNS: a refused port, or a host that is a literal address
 * the policy refuses (`http://2130706433/` is 127.0.0.1 once parsed: the WHATWG parser normalises
 * decimal, octal and hex IPv4 spellings, and `[::ffff:7f00:1]` stays an IPv6 literal). `localhost` and
 * names under `.localhost` count as 127.0.0.1 (RFC 6761: they always mean this machine).
 * A host name is allowed here: it is judged when it resolves, by the address it resolves to.
 */
export function checkUrlTarget(policy: DestinationPolicy, url: URL): { verdict: Verdict; address?: string } {
  const port = checkPort(policy, urlPort(url));
  if (!port.allowed) return { verdict: port };
  let host = url.hostname;
  if (host.startsWith('[')) host = host.slice(1, -1);
  const name = normalizeHost(host);
  if (name === 'localhost' || name.endsWith('.localhost')) {
    return { verdict: checkAddress(policy, '127.0.0.1', name), address: '127.0.0.1' };
  }
  if (!parseAddress(host)) return { verdict: ALLOWED };
  return { verdict: checkAddress(policy, host), address: host };
}
