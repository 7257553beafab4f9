/** The NLB's HTTP admin endpoint: /healthz (alive), /readyz (serving), /metrics (Prometheus). */
import { createServer, type Server } from 'node:http';
import type { Registry as PromRegistry } from 'prom-client';

export interface AdminHttpOptions {
  metrics: PromRegistry;
  /** Null when ready, else the reason it is not. */
  notReadyReason: () => string | null;
}

export interface AdminHttp {
  server: Server;
  start(host: string, port: number): Promise<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/** Creates the admin server (not yet listening). */
export function createAdminHttp(opts: AdminHttpOptions): AdminHttp {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const why = opts.notReadyReason();
      res
        .writeHead(why ? 503 : 200, { 'content-type': 'text/plain' })
        .end(why ? `not ready: ${why}\n` : 'ready\n');
    } else if (path === '/metrics') {
      opts.metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': opts.metrics.contentType }).end(text),
        (e: unknown) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(e)}\n`),
      );
    } else {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: try /healthz, /readyz or /metrics\n');
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  return {
    server,
    start: (host, port) =>
      new Promise((resolve, reject) => {
        const onError = (e: NodeJS.ErrnoException) =>
          reject(
            new Error(`cannot listen on ${host}:${port} for the admin endpoint (${e.code ?? e.message})`),
          );
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          const a = server.address();
          resolve({ host, port: typeof a === 'object' && a ? a.port : port });
        });
      }),
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
