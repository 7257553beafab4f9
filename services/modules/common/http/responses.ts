/** Short error responses the HTTP modules give themselves (404, 429, 502, 503, 504…). */
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { StatsCollector } from '../../runtime/stats.js';

/** Status-class counter names, so the hot path builds no strings. */
const STATUS_CLASS = ['status_1xx', 'status_1xx', 'status_2xx', 'status_3xx', 'status_4xx', 'status_5xx'];

/** Counts a response in its status class (status_2xx…). */
export function countStatus(stats: StatsCollector, status: number): void {
  stats.count(STATUS_CLASS[Math.min(5, Math.floor(status / 100))] ?? 'status_5xx');
}

/** Ends `res` with a one-line text body naming the request id; closes the connection if asked. */
export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  requestId: string,
  extra: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${status} ${STATUS_CODES[status] ?? ''}: ${message} (request id ${requestId})\n`;
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'X-Request-Id': requestId,
    ...extra,
  });
  res.end(body);
}

/** Ends `res` with a JSON error body in the OpenAI shape ({"error": {message, type, code}}). */
export function sendJsonError(
  res: ServerResponse,
  status: number,
  message: string,
  type: string,
  requestId: string,
  extra: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { message, type, code: status, request_id: requestId } });
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'X-Request-Id': requestId,
    ...extra,
  });
  res.end(body);
}

/** The same on a raw socket (an upgrade request that never reached a backend), then close. */
export function rawError(
  socket: Duplex,
  status: number,
  message: string,
  extra: Record<string, string> = {},
): void {
  const body = `${status} ${STATUS_CODES[status] ?? ''}: ${message}\n`;
  const lines = Object.entries(extra)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${lines}Connection: close\r\n\r\n${body}`,
  );
}

/** Retry-After in whole seconds (at least 1) for a wait in milliseconds. */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}
