/**
 * The nginx.conf around the repository's own nginx/ folder that the bench and the tests run: the
 * production routes (postback/http.conf at http level, postback/locations.conf in the server) with
 * everything else under one prefix directory. Pure: the caller writes it and starts nginx.
 */
export interface NginxConfOptions {
  /** Directory holding logs/, temp paths and the `postback` symlink to the repository's nginx/. */
  readonly prefix: string;
  readonly listenPort: number;
  /** nginx worker_processes: a number or 'auto'. */
  readonly workers: string | number;
  readonly workerConnections: number;
  /** Upstream name -> ports on 127.0.0.1; `postback_ingest` is the one locations.conf proxies to. */
  readonly upstreams: Readonly<Record<string, readonly number[]>>;
  /** Keep-alive connections to each upstream (production: 64). */
  readonly keepalive: number;
  /** `listen` parameters after the address, e.g. `backlog=4096`. */
  readonly listenParams?: string;
  /** Extra server-level lines, placed before the repository's locations. */
  readonly serverBefore?: string;
  /** Extra server-level lines, placed after the repository's locations. */
  readonly serverAfter?: string;
}

export function nginxConf(o: NginxConfOptions): string {
  const upstreams = Object.entries(o.upstreams)
    .map(
      ([name, ports]) =>
        `    upstream ${name} {\n${ports.map((p) => `        server 127.0.0.1:${p};`).join('\n')}\n        keepalive ${o.keepalive};\n    }`,
    )
    .join('\n');
  return `worker_processes ${o.workers};
pid ${o.prefix}/nginx.pid;
error_log ${o.prefix}/logs/error.log warn;
events { worker_connections ${o.workerConnections}; }
http {
    include postback/http.conf;
    access_log ${o.prefix}/logs/access.log postback_json;
    client_body_temp_path ${o.prefix}/body;
    proxy_temp_path ${o.prefix}/proxy;
    fastcgi_temp_path ${o.prefix}/fastcgi;
    uwsgi_temp_path ${o.prefix}/uwsgi;
    scgi_temp_path ${o.prefix}/scgi;
${upstreams}
    server {
        listen 127.0.0.1:${o.listenPort}${o.listenParams ? ` ${o.listenParams}` : ''};
        server_name _;
${o.serverBefore ?? ''}
        include postback/locations.conf;
${o.serverAfter ?? ''}
    }
}
`;
}
