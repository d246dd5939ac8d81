/**
 * The destination policy (src/shared/destination-policy.ts) enforced where connections are made: on the
 * http.Agent / https.Agent that both HTTP clients (got and node:http) send through, so every connection,
 * the first and each redirect hop's, passes here, and keep-alive sockets are checked once, not per request.
 *
 * Three checks, because each closes a gap the others leave:
 *  1. the URL's port, and its host when it is a literal address (no DNS happens for those);
 *  2. every address a host name resolves to, in a `lookup` wrapped around the agent's own: addresses the
 *     policy refuses are dropped, and a name left with none fails with ERR_DESTINATION_FORBIDDEN before
 *     any packet is sent to it;
 *  3. the socket's remote address once it is connected (before the request is written): what was
 *     actually connected to, whatever resolved it (a custom agent, a DNS answer that changed between
 *     lookups: rebinding), is checked again and the socket destroyed if refused.
 *
 * Wrapping an existing agent (rather than subclassing one) keeps agents built elsewhere working: the
 * tests pass agents that pin every connection to a local endpoint, and the guard still checks where
 * those connect.
 */
import dns from 'node:dns';
import type http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { checkAddress, checkPort, type DestinationPolicy, type Verdict } from '../shared/destination-policy.js';

export const DESTINATION_FORBIDDEN = 'ERR_DESTINATION_FORBIDDEN';

/** A connection the policy refused. `code` is what the classifier and the log line see. */
export class DestinationForbiddenError extends Error {
  readonly code = DESTINATION_FORBIDDEN;
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
    this.name = 'DestinationForbiddenError';
  }
}

function forbidden(what: string, verdict: Verdict & { allowed: false }): DestinationForbiddenError {
  return new DestinationForbiddenError(`destination ${what} is not allowed (${verdict.reason})`, verdict.reason);
}

type LookupFn = (hostname: string, options: dns.LookupOptions, callback: (...args: any[]) => void) => void;

/** A lookup that passes on only the addresses the policy allows for `hostname`. */
export function guardedLookup(policy: DestinationPolicy, lookup: LookupFn = dns.lookup as LookupFn): LookupFn {
  return (hostname, options, callback) => {
    const opts = typeof options === 'object' && options !== null ? options : {};
    lookup(hostname, opts, (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => {
      if (err) return callback(err);
      const all = Array.isArray(address) ? address : [{ address, family: family ?? net.isIP(address) }];
      let firstRefusal: (Verdict & { allowed: false }) | undefined;
      let refusedAddress = '';
      const kept = all.filter((a) => {
        const v = checkAddress(policy, a.address, hostname);
        if (!v.allowed && !firstRefusal) {
          firstRefusal = v;
          refusedAddress = a.address;
        }
        return v.allowed;
      });
      if (kept.length === 0) {
        return callback(forbidden(`${hostname} resolves to ${refusedAddress || 'no address'}, which`, firstRefusal ?? { allowed: false, reason: 'no_address' }));
      }
      if (opts.all) return callback(null, kept);
      return callback(null, kept[0]!.address, kept[0]!.family);
    });
  };
}

type CreateConnection = (options: any, callback?: (err: Error | null, socket?: Duplex) => void) => Duplex | undefined | null;

/**
 * Make `agent` enforce `policy` on every connection it opens. Returns the same agent. Idempotent.
 */
export function guardAgent<A extends http.Agent>(agent: A, policy: DestinationPolicy): A {
  const marked = agent as A & { [GUARDED]?: true };
  if (marked[GUARDED]) return agent;
  marked[GUARDED] = true;
  const a = agent as unknown as { createConnection: CreateConnection };
  const create: CreateConnection = a.createConnection.bind(agent);
  a.createConnection = (options: any, callback?: (err: Error | null, socket?: Duplex) => void) => {
    const fail = (err: Error) => {
      // http.Agent takes an error through the callback (the request then emits it); without a callback,
      // a socket that fails at once does the same.
      if (callback) {
        callback(err);
        return undefined;
      }
      const s = new net.Socket();
      process.nextTick(() => s.destroy(err));
      return s;
    };
    const rawHost: string = options.host ?? options.hostname ?? 'localhost';
    const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
    const port = Number(options.port ?? (options.protocol === 'https:' || options.servername !== undefined ? 443 : 80));
    const portVerdict = checkPort(policy, port);
    if (!portVerdict.allowed) return fail(forbidden(`port ${port}`, portVerdict));
    if (net.isIP(host)) {
      const v = checkAddress(policy, host);
      if (!v.allowed) return fail(forbidden(host, v));
    }
    const socket = create({ ...options, lookup: guardedLookup(policy, options.lookup) }, callback);
    if (socket) watchConnect(socket as net.Socket, policy, net.isIP(host) ? undefined : host);
    return socket;
  };
  return agent;
}

const GUARDED = Symbol('destinationGuarded');

/** Check the remote address once connected; destroy the socket (before anything is written) if refused. */
function watchConnect(socket: net.Socket, policy: DestinationPolicy, host: string | undefined): void {
  const check = () => {
    const remote = socket.remoteAddress;
    if (remote === undefined) return; // already closed: nothing to check
    const v = checkAddress(policy, remote, host);
    if (!v.allowed) socket.destroy(forbidden(`${host ?? 'address'} connected to ${remote}, which`, v));
  };
  // Registered before the HTTP client's own listeners (which flush the request on connect), so a
  // refused socket is destroyed before a byte of the request is written.
  if (socket.connecting === false && socket.remoteAddress) check();
  else socket.once('connect', check);
}
