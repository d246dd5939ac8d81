// The system tests' way out for their containers: an HTTP proxy on the test bridge's host address that
// lets apt and npm inside a container reach the few hosts they need (the Debian mirror, the npm
// registry), and nothing else. The containers have their own network namespace and no route anywhere;
// this process, on the host, makes the outbound connections, as apt and npm on the host would.
//
//   node egress-proxy.cjs <listen address> <port file> <host[:port]>...
// Writes the port it listens on to <port file>. Plain-HTTP requests in absolute form (apt) are
// forwarded; CONNECT (https: npm, the Node.js download) is tunnelled; both only to the hosts given.
'use strict';
const http = require('node:http');
const net = require('node:net');
const fs = require('node:fs');

const [listen, portFile, ...allowed] = process.argv.slice(2);
const allow = new Set(allowed.map((h) => h.toLowerCase()));
const permitted = (host, port) => allow.has(host.toLowerCase()) || allow.has(`${host.toLowerCase()}:${port}`);

const server = http.createServer((req, res) => {
  let url;
  try {
    url = new URL(req.url);
  } catch {
    res.writeHead(400).end('absolute-form request expected\n');
    return;
  }
  const port = Number(url.port || 80);
  if (url.protocol !== 'http:' || !permitted(url.hostname, port)) {
    res.writeHead(403).end(`not allowed: ${url.host}\n`);
    return;
  }
  const headers = { ...req.headers };
  delete headers['proxy-connection'];
  const upstream = http.request({ host: url.hostname, port, method: req.method, path: url.pathname + url.search, headers }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  upstream.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502);
    res.end(`${err.message}\n`);
  });
  req.pipe(upstream);
});

server.on('connect', (req, socket, head) => {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? '');
  if (!m || !permitted(m[1], Number(m[2]))) {
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    return;
  }
  const upstream = net.connect(Number(m[2]), m[1], () => {
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  const close = () => {
    upstream.destroy();
    socket.destroy();
  };
  upstream.on('error', () => socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
  socket.on('error', close);
});

server.listen(0, listen, () => {
  fs.writeFileSync(portFile, String(server.address().port));
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
