/**
 * Client-side PostgreSQL authentication for health checks: cleartext, MD5 and SCRAM-SHA-256
 * (RFC 5802 / RFC 7677, without channel binding). Pure functions over node:crypto.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { encodeMessage } from './pg-protocol.js';

export const AUTH_OK = 0;
export const AUTH_CLEARTEXT = 3;
export const AUTH_MD5 = 5;
export const AUTH_SASL = 10;
export const AUTH_SASL_CONTINUE = 11;
export const AUTH_SASL_FINAL = 12;

/** PasswordMessage with the cleartext password. */
export function cleartextPassword(password: string): Buffer {
  return encodeMessage('p', Buffer.from(`${password}\0`, 'utf8'));
}

/** PasswordMessage for AuthenticationMD5Password: "md5" + md5(md5(password + user) + salt). */
export function md5Password(user: string, password: string, salt: Buffer): Buffer {
  const inner = createHash('md5')
    .update(password + user, 'utf8')
    .digest('hex');
  const outer = createHash('md5')
    .update(Buffer.concat([Buffer.from(inner, 'latin1'), salt]))
    .digest('hex');
  return encodeMessage('p', Buffer.from(`md5${outer}\0`, 'latin1'));
}

/** One SCRAM-SHA-256 exchange: first message, then the final from the server's first. */
export class ScramClient {
  private readonly nonce: string;
  private readonly firstBare: string;
  private serverSignature: Buffer | null = null;

  /** PostgreSQL ignores the SCRAM user name (the startup's counts), so it is empty by default. */
  constructor(
    private readonly password: string,
    nonce = randomBytes(18).toString('base64'),
    user = '',
  ) {
    this.nonce = nonce;
    this.firstBare = `n=${user},r=${nonce}`;
  }

  /** SASLInitialResponse naming SCRAM-SHA-256. */
  initialResponse(): Buffer {
    const first = Buffer.from(`n,,${this.firstBare}`, 'utf8');
    const mech = Buffer.from('SCRAM-SHA-256\0', 'latin1');
    const len = Buffer.alloc(4);
    len.writeInt32BE(first.length);
    return encodeMessage('p', Buffer.concat([mech, len, first]));
  }

  /** SASLResponse with the proof for the server's first message, or an error text. */
  finalResponse(serverFirst: string): Buffer | string {
    const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)] as const));
    const r = attrs.get('r') ?? '';
    const s = attrs.get('s');
    const i = Number(attrs.get('i'));
    if (!r.startsWith(this.nonce) || !s || !Number.isInteger(i) || i < 1 || i > 10_000_000)
      return 'malformed SCRAM server-first message';
    const salted = pbkdf2Sync(this.password.normalize('NFKC'), Buffer.from(s, 'base64'), i, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=biws,r=${r}`;
    const authMessage = `${this.firstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let k = 0; k < proof.length; k++) proof[k] = clientKey[k] ^ signature[k];
    this.serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return encodeMessage('p', Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8'));
  }

  /** Whether the server's final message proves it knows the password too. */
  verifyFinal(serverFinal: string): boolean {
    const v = /(?:^|,)v=([^,]+)/.exec(serverFinal)?.[1];
    if (!v || !this.serverSignature) return false;
    const got = Buffer.from(v, 'base64');
    return got.length === this.serverSignature.length && timingSafeEqual(got, this.serverSignature);
  }
}

const hmac = (key: Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
