/**
 * The bulk client of the data-plane benchmark (bench/dataplane.ts): one TCP connection that
 * GETs a large file over HTTP/1.1 keep-alive, again and again, for `seconds`, and counts the
 * body bytes. HTTP rather than raw TCP so that the NLB's sniffing listener can route it like
 * any other HTTP connection. Prints one JSON line: {"bytes", "seconds", "responses"}.
 *
 *   node dataplane-bulk.js PORT PATH SECONDS
 */
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';

const [portText, path, secondsText] = process.argv.slice(2);
const port = Number(portText);
const seconds = Number(secondsText);
if (!port || !path || !(seconds > 0)) {
  console.error('usage: node dataplane-bulk.js PORT PATH SECONDS');
  process.exit(2);
}

const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: mp-bench-bulk\r\n\r\n`);
const socket = connect({ host: '127.0.0.1', port, noDelay: true });
let t0 = 0;
let deadline = 0;
let bytes = 0;
let responses = 0;
/** Body bytes still expected for the current response; -1 while reading its header. */
let remaining = -1;
let header: Buffer = Buffer.alloc(0);
let done = false;

const finish = (error?: string) => {
  if (done) return;
  done = true;
  const elapsed = (performance.now() - t0) / 1000;
  socket.destroy();
  process.stdout.write(`${JSON.stringify({ bytes, seconds: elapsed, responses, error })}\n`);
  process.exitCode = error ? 1 : 0;
};

const next = () => {
  remaining = -1;
  header = Buffer.alloc(0);
  socket.write(request);
};

socket.on('connect', () => {
  t0 = performance.now();
  deadline = t0 + seconds * 1000;
  next();
});
socket.on('data', (chunk: Buffer) => {
  if (remaining < 0) {
    header = header.length ? Buffer.concat([header, chunk]) : chunk;
    const end = header.indexOf('\r\n\r\n');
    if (end < 0) {
      if (header.length > 16_384) finish('response header too long');
      return;
    }
    const head = header.subarray(0, end).toString('latin1');
    if (!/^HTTP\/1\.1 200 /.test(head)) return finish(`unexpected response: ${head.split('\r\n')[0]}`);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!length) return finish('no Content-Length');
    remaining = Number(length[1]);
    chunk = header.subarray(end + 4);
  }
  bytes += chunk.length;
  remaining -= chunk.length;
  if (performance.now() >= deadline) return finish();
  if (remaining === 0) {
    responses++;
    next();
  } else if (remaining < 0) finish('more bytes than Content-Length');
});
socket.on('error', (e) => finish(e.message));
socket.on('close', () => finish(done ? undefined : 'connection closed early'));
setTimeout(() => finish('timed out'), seconds * 1000 + 30_000).unref();
