/**
 * Health probes that speak the protocol: PostgreSQL (a startup that reaches authentication, or
 * with credentials: authenticate and `SELECT 1`) and MySQL (a greeting, or with a user:
 * authenticate and COM_QUIT). Each is one connection bounded by `timeoutMs` as a whole.
 */
import { connect, type Socket } from 'node:net';
import { parseHostPort } from '../../nlb/domain/validate.js';
import type { HealthCheckResult } from '../runtime/plugin.js';
import {
  AUTH_CLEARTEXT,
  AUTH_MD5,
  AUTH_OK,
  AUTH_SASL,
  AUTH_SASL_CONTINUE,
  AUTH_SASL_FINAL,
  cleartextPassword,
  md5Password,
  ScramClient,
} from './pg-auth.js';
import { encodeMessage, encodeStartup, errorFields, MessageReader } from './pg-protocol.js';
import {
  COM_QUIT,
  encodeHandshakeResponse,
  ER_ACCESS_DENIED_ERROR,
  parseErr,
  parseGreeting,
  readPacket,
} from './mysql-protocol.js';

export interface ProbeCredentials {
  user: string;
  password?: string;
  database?: string;
}

/** One connection's conversation: `onData` returns a result to finish, or undefined to go on. */
function converse(
  address: string,
  timeoutMs: number,
  start: (s: Socket) => void,
  onData: (chunk: Buffer, s: Socket) => HealthCheckResult | undefined,
): Promise<HealthCheckResult> {
  const hp = parseHostPort(address);
  if (!hp) return Promise.resolve({ ok: false, message: `"${address}" is not host:port` });
  return new Promise((resolve) => {
    const started = performance.now();
    const s = connect({ host: hp.host, port: hp.port, noDelay: true });
    let done = false;
    const finish = (r: HealthCheckResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(
        r.ok ? { ok: true, message: `${r.message} in ${Math.round(performance.now() - started)} ms` } : r,
      );
    };
    const timer = setTimeout(
      () => finish({ ok: false, message: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    s.once('connect', () => start(s));
    s.on('data', (chunk: Buffer) => {
      let r: HealthCheckResult | undefined;
      try {
        r = onData(chunk, s);
      } catch (e) {
        r = { ok: false, message: `probe failed: ${String(e)}` };
      }
      if (r) finish(r);
    });
    s.once('error', (e: NodeJS.ErrnoException) =>
      finish({ ok: false, message: `${address}: ${e.code ?? e.message}` }),
    );
    s.once('close', () => finish({ ok: false, message: `${address} closed the connection` }));
  });
}

/** SQLSTATE classes that say the server is not taking sessions: 53 (resources), 57 (operator), 08 (connection). */
const DOWN_CLASSES = new Set(['53', '57', '08']);

/** PostgreSQL: startup; reaching authentication is healthy, unless credentials ask for `SELECT 1`. */
export function probePostgres(
  address: string,
  timeoutMs: number,
  creds?: ProbeCredentials,
): Promise<HealthCheckResult> {
  const user = creds?.user ?? 'marchproxy_health';
  const database = creds?.database ?? 'postgres';
  const reader = new MessageReader(1 << 16);
  let scram: ScramClient | null = null;
  let queried = false;
  return converse(
    address,
    timeoutMs,
    (s) => s.write(encodeStartup({ user, database, application_name: 'marchproxy-health' })),
    (chunk, s) => {
      const { messages, error } = reader.push(chunk);
      if (error) return { ok: false, message: `not PostgreSQL (${error})` };
      for (const m of messages) {
        if (m.type === 'E') {
          const f = errorFields(m.body);
          const cls = (f.C ?? '').slice(0, 2);
          if (!creds && !DOWN_CLASSES.has(cls))
            return { ok: true, message: `reached authentication (${f.C})` };
          return { ok: false, message: `${f.C ?? '?'} ${f.M ?? ''}`.trim() };
        }
        if (m.type === 'R') {
          const code = m.body.readInt32BE(0);
          if (!creds && code !== AUTH_OK) return { ok: true, message: 'reached authentication' };
          if (code === AUTH_OK) continue;
          const password = creds?.password ?? '';
          if (code === AUTH_CLEARTEXT) s.write(cleartextPassword(password));
          else if (code === AUTH_MD5) s.write(md5Password(user, password, m.body.subarray(4, 8)));
          else if (code === AUTH_SASL) {
            if (!m.body.includes('SCRAM-SHA-256\0'))
              return { ok: false, message: 'no SCRAM-SHA-256 offered' };
            scram = new ScramClient(password);
            s.write(scram.initialResponse());
          } else if (code === AUTH_SASL_CONTINUE && scram) {
            const r = scram.finalResponse(m.body.toString('utf8', 4));
            if (typeof r === 'string') return { ok: false, message: r };
            s.write(r);
          } else if (code === AUTH_SASL_FINAL && scram) {
            if (!scram.verifyFinal(m.body.toString('utf8', 4)))
              return { ok: false, message: 'the server did not prove the SCRAM password' };
          } else return { ok: false, message: `unsupported authentication request ${code}` };
        }
        if (m.type === 'Z') {
          if (queried) {
            s.write(encodeMessage('X', Buffer.alloc(0)));
            return { ok: true, message: 'SELECT 1 ok' };
          }
          queried = true;
          s.write(encodeMessage('Q', Buffer.from('SELECT 1\0')));
        }
      }
      return undefined;
    },
  );
}

/** MySQL: the greeting; with a user, also authenticate (an access-denied answer still proves the server up). */
export function probeMysql(
  address: string,
  timeoutMs: number,
  creds?: ProbeCredentials,
): Promise<HealthCheckResult> {
  let buf: Buffer = Buffer.alloc(0);
  let greeted = false;
  return converse(
    address,
    timeoutMs,
    () => undefined,
    (chunk, s) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > 1 << 16) return { ok: false, message: 'not MySQL (oversized first packet)' };
      const pkt = readPacket(buf);
      if (!pkt) return undefined;
      buf = buf.subarray(pkt.length);
      if (!greeted) {
        const g = parseGreeting(pkt.payload);
        if (!g) return { ok: false, message: 'not a MySQL greeting' };
        if ('error' in g) return { ok: false, message: `${g.error.code} ${g.error.message}` };
        greeted = true;
        if (!creds) return { ok: true, message: `greeting from ${g.serverVersion}` };
        s.write(encodeHandshakeResponse(creds.user, creds.password ?? '', g, creds.database));
        return undefined;
      }
      const first = pkt.payload[0];
      if (first === 0x00) {
        s.write(COM_QUIT);
        return { ok: true, message: 'authenticated' };
      }
      if (first === 0xff) {
        const e = parseErr(pkt.payload);
        if (e.code === ER_ACCESS_DENIED_ERROR)
          return { ok: true, message: `reached authentication (${e.message})` };
        return { ok: false, message: `${e.code} ${e.message}` };
      }
      // An auth switch or more data: the server is answering the protocol.
      return { ok: true, message: 'reached authentication' };
    },
  );
}
