/**
 * The small HTTP plumbing the demo backends share: listen on host:port (0 picks a free port),
 * read a bounded body, answer JSON, and close, ending keep-alive connections too.
 */
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running demo server. */
export interface DemoServer {
  /** host:port it listens on. */
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Starts `handler` on `host:port`; resolves once it listens. */
export async function listenHttp(handler: RequestListener, host: string, port: number): Promise<DemoServer> {
  const server = createServer(handler);
  // Demo traffic is short requests; do not let idle keep-alive connections hold a shutdown.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    address: `${host.includes(':') ? `[${host}]` : host}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The request body as text, at most `limitBytes` (more is an error). */
export async function readBody(req: IncomingMessage, limitBytes = 1 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw new Error(`request body over ${limitBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Answers `status` with `body` as JSON. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}
