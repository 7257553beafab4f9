/**
 * The instance side of a connection: connect with a timeout, and the PROXY v2 header that tells
 * the instance who the client is.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { encodeProxyV2 } from './proxy-protocol.js';
import type { ReusedReadBuffer } from './read-buffer.js';
import { plainAddress } from './route-facts.js';

/** The PROXY v2 header for a client connection (IPv4-mapped IPv6 addresses shown as IPv4). */
export function proxyHeaderFor(client: Socket): Buffer {
  return encodeProxyV2({
    srcAddress: plainAddress(client.remoteAddress ?? ''),
    srcPort: client.remotePort ?? 0,
    dstAddress: plainAddress(client.localAddress ?? ''),
    dstPort: client.localPort ?? 0,
  });
}

/**
 * Connects with a timeout; `started` sees the socket at once so that a stop can destroy it.
 * With `reader`, the socket reads into its reused buffer instead of emitting 'data'.
 */
export function connectTo(
  address: string,
  timeoutMs: number,
  started: (s: Socket) => void,
  reader?: ReusedReadBuffer,
): Promise<Socket> {
  const target = parseHostPort(address);
  if (!target)
    return Promise.reject(
      Object.assign(new Error(`bad traffic address ${address}`), { code: 'bad_address' }),
    );
  return new Promise((resolve, reject) => {
    const s = netConnect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      ...(reader ? { onread: reader.onread } : {}),
    });
    s.on('error', () => undefined); // reported by the handlers below, then by forward()
    started(s);
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error('connect timed out'), { code: 'connect_timeout' }));
    }, timeoutMs);
    const onError = (e: Error) => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    const onClose = () => {
      clearTimeout(timer);
      reject(Object.assign(new Error('connect aborted'), { code: 'aborted' }));
    };
    s.once('error', onError);
    s.once('close', onClose);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      s.off('close', onClose);
      resolve(s);
    });
  });
}

/** "host:port" or "[v6]:port". */
export function parseHostPort(address: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(address) ?? /^([^:]+):(\d{1,5})$/.exec(address);
  if (!m) return null;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1], port } : null;
}
