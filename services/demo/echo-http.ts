/**
 * The demo HTTP echo service of `mpctl dev`: answers every request with its version, method,
 * path, query, headers and body size as JSON (and an `x-echo-version` header), so a request
 * through the ALB shows which backend version served it. Two run side by side, "v1" and "v2".
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listenHttp, readBody, sendJson, type DemoServer } from './http-server.js';

/** Options of startEchoHttp. */
export interface EchoHttpOptions {
  /** Reported in every answer, e.g. "v1". */
  version: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

/** A running echo server. */
export interface EchoHttpServer extends DemoServer {
  version: string;
}

/** What the echo service answers. */
export interface EchoAnswer {
  service: 'echo';
  version: string;
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[]>;
  bodyBytes: number;
}

/** The answer to a request (pure: no I/O). */
export function echoAnswer(
  version: string,
  req: Pick<IncomingMessage, 'method' | 'url' | 'headers'>,
  bodyBytes: number,
): EchoAnswer {
  const url = new URL(req.url ?? '/', 'http://echo.invalid');
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers[name] = value;
  return {
    service: 'echo',
    version,
    method: req.method ?? 'GET',
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers,
    bodyBytes,
  };
}

/** Starts an echo server. */
export async function startEchoHttp(options: EchoHttpOptions): Promise<EchoHttpServer> {
  const { version } = options;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let body: string;
    try {
      body = await readBody(req);
    } catch (e) {
      return sendJson(res, 413, { error: (e as Error).message });
    }
    const answer = echoAnswer(version, req, Buffer.byteLength(body));
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'application/json', 'x-echo-version': version });
      return res.end();
    }
    sendJson(res, 200, answer, { 'x-echo-version': version });
  };
  const server = await listenHttp(
    (req, res) => void handle(req, res),
    options.host ?? '127.0.0.1',
    options.port ?? 0,
  );
  return { ...server, version };
}
