/** Deep health checks shared by module types: can a backend's host:port be reached over TCP? */
import { connect } from 'node:net';
import { parseHostPort } from '../../nlb/domain/validate.js';
import type { HealthCheckResult } from '../runtime/plugin.js';

/** Opens and closes a TCP connection within `timeoutMs`. */
export function tcpCheck(address: string, timeoutMs = 1000): Promise<HealthCheckResult> {
  const hp = parseHostPort(address);
  if (!hp) return Promise.resolve({ ok: false, message: `"${address}" is not host:port` });
  return new Promise((resolve) => {
    const started = performance.now();
    const s = connect({ host: hp.host, port: hp.port });
    const done = (r: HealthCheckResult) => {
      clearTimeout(t);
      s.destroy();
      resolve(r);
    };
    const t = setTimeout(
      () => done({ ok: false, message: `no TCP connection to ${address} within ${timeoutMs} ms` }),
      timeoutMs,
    );
    s.once('connect', () =>
      done({ ok: true, message: `reachable in ${Math.round(performance.now() - started)} ms` }),
    );
    s.once('error', (e: NodeJS.ErrnoException) =>
      done({ ok: false, message: `${address}: ${e.code ?? e.message}` }),
    );
  });
}

/** Checks every backend; shallow checks only report how many are configured. */
export async function backendChecks(
  backends: ReadonlyArray<{ name: string; address: string }>,
  deep: boolean,
): Promise<Record<string, HealthCheckResult>> {
  if (!deep) return { config: { ok: true, message: `${backends.length} backend(s) configured` } };
  const results = await Promise.all(
    backends.map(async (b) => [`backend:${b.name}`, await tcpCheck(b.address)] as const),
  );
  return Object.fromEntries(results);
}
