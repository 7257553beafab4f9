/**
 * A small local PKI for the local stack (`mpctl certs init`, `mpctl dev --tls`): a CA, a server
 * certificate for the given hosts and a client certificate for mutual TLS, all ECDSA P-256.
 * Keys come from node:crypto; the X.509 certificates are DER-encoded here (RFC 5280, only what
 * these three certificates need) and signed with the CA key, so no openssl binary and no
 * dependency is needed. Pure apart from `writeLocalPki`, which writes the files.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

// --- DER ---------------------------------------------------------------------------------------

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v >>>= 8) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const TRUE = tlv(0x01, Buffer.from([0xff]));

function integer(b: Buffer): Buffer {
  // Two's complement: a leading 1 bit would make it negative.
  return tlv(0x02, b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0] + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime up to 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyId: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyId: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

function name(commonName: string): Buffer {
  return seq(
    set(seq(oid(OID.organization), utf8('MarchProxy local stack'))),
    set(seq(oid(OID.commonName), utf8(commonName))),
  );
}

function extension(id: string, value: Buffer, critical = false): Buffer {
  return critical ? seq(oid(id), TRUE, octets(value)) : seq(oid(id), octets(value));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // Expand "::" and any embedded IPv4 tail, then write eight 16-bit groups.
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function subjectAltNames(hosts: readonly string[]): Buffer {
  // dNSName is [2] IA5String, iPAddress is [7] OCTET STRING (both IMPLICIT).
  return seq(...hosts.map((h) => (isIP(h) ? tlv(0x87, ipBytes(h)) : tlv(0x82, Buffer.from(h, 'ascii')))));
}

// --- certificates ------------------------------------------------------------------------------

interface Issued {
  certPem: string;
  keyPem: string;
  key: KeyObject;
  subject: Buffer;
  keyId: Buffer;
}

interface CertSpec {
  commonName: string;
  days: number;
  ca?: boolean;
  /** Extended key usage OIDs (leaf certificates). */
  usages?: string[];
  hosts?: readonly string[];
  /** Signs with this CA; self-signed when absent. */
  issuer?: Issued;
  now: Date;
}

const DAY_MS = 86_400_000;

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function issue(spec: CertSpec): Issued {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const keyId = createHash('sha1').update(spki).digest();
  const subject = name(spec.commonName);
  const issuer = spec.issuer;
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x40; // positive, 16 bytes, never a leading zero
  const extensions = [
    extension(OID.basicConstraints, spec.ca ? seq(TRUE, integer(Buffer.from([0]))) : seq(), true),
    // keyCertSign + cRLSign + digitalSignature for the CA, digitalSignature for leaves.
    extension(OID.keyUsage, spec.ca ? bits(Buffer.from([0x86]), 1) : bits(Buffer.from([0x80]), 7), true),
    extension(OID.subjectKeyId, octets(keyId)),
    ...(issuer ? [extension(OID.authorityKeyId, seq(tlv(0x80, issuer.keyId)))] : []),
    ...(spec.usages ? [extension(OID.extKeyUsage, seq(...spec.usages.map(oid)))] : []),
    ...(spec.hosts?.length ? [extension(OID.subjectAltName, subjectAltNames(spec.hosts))] : []),
  ];
  const algorithm = seq(oid(OID.ecdsaWithSha256));
  // Valid from an hour ago, so that a clock a little behind does not reject a fresh certificate.
  const notBefore = new Date(spec.now.getTime() - 3_600_000);
  const notAfter = new Date(spec.now.getTime() + spec.days * DAY_MS);
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // v3
    integer(serial),
    algorithm,
    issuer ? issuer.subject : subject,
    seq(time(notBefore), time(notAfter)),
    subject,
    spki,
    tlv(0xa3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, issuer ? issuer.key : privateKey);
  const der = seq(tbs, algorithm, bits(signature));
  return {
    certPem: toPem('CERTIFICATE', der),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    key: privateKey,
    subject,
    keyId,
  };
}

/** The default hosts the server certificate is valid for. */
export const DEFAULT_CERT_HOSTS = ['127.0.0.1', 'localhost', '::1'];

/** The PEM files of a local PKI. */
export interface LocalPki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** The file names inside the certificates directory. */
export const PKI_FILES: Readonly<Record<keyof LocalPki, string>> = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  clientCert: 'client.crt',
  clientKey: 'client.key',
};

/**
 * Checks a --hosts list: IP addresses, DNS names or "*.name" wildcards. Returns the problems
 * (empty when it is usable).
 */
export function hostProblems(hosts: readonly string[]): string[] {
  if (hosts.length === 0) return ['no host given: list at least one, e.g. 127.0.0.1,localhost'];
  const dns =
    /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
  return hosts
    .filter((h) => !isIP(h) && !(dns.test(h) && h.length <= 253))
    .map((h) => `"${h}" is neither an IP address nor a DNS name`);
}

/** Creates a CA, a server certificate for `hosts` and a client certificate (PEM strings). */
export function createLocalPki(hosts: readonly string[], now = new Date()): LocalPki {
  const problems = hostProblems(hosts);
  if (problems.length) throw new Error(problems.join('; '));
  const ca = issue({ commonName: 'MarchProxy local CA', days: 3650, ca: true, now });
  const server = issue({
    commonName: hosts[0],
    days: 825,
    usages: [OID.serverAuth],
    hosts,
    issuer: ca,
    now,
  });
  const client = issue({
    commonName: 'mpctl local client',
    days: 825,
    usages: [OID.clientAuth],
    issuer: ca,
    now,
  });
  return {
    caCert: ca.certPem,
    caKey: ca.keyPem,
    serverCert: server.certPem,
    serverKey: server.keyPem,
    clientCert: client.certPem,
    clientKey: client.keyPem,
  };
}

const allPaths = (p: LocalPki): string[] =>
  (Object.keys(PKI_FILES) as Array<keyof LocalPki>).map((k) => p[k]);

/** The paths of the PKI files in `dir`. */
export function pkiPaths(dir: string): LocalPki {
  const files = Object.entries(PKI_FILES) as Array<[keyof LocalPki, string]>;
  return Object.fromEntries(files.map(([k, f]) => [k, join(dir, f)])) as Record<keyof LocalPki, string>;
}

/**
 * Writes a fresh PKI into `dir` (created 0700): keys 0600, certificates 0644. Without `force`,
 * refuses when any of the files exists, naming them. Returns the paths.
 */
export function writeLocalPki(dir: string, hosts: readonly string[], force = false): LocalPki {
  const paths = pkiPaths(dir);
  const present = allPaths(paths).filter((p) => existsSync(p));
  if (present.length && !force)
    throw new Error(
      `${present.join(', ')} already exist${present.length === 1 ? 's' : ''}: pass --force to replace them`,
    );
  const pki = createLocalPki(hosts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const k of Object.keys(PKI_FILES) as Array<keyof LocalPki>) {
    const secret = k.endsWith('Key');
    writeFileSync(paths[k], pki[k], { mode: secret ? 0o600 : 0o644 });
    // writeFileSync keeps the mode of a file it replaces (--force): set it explicitly.
    chmodSync(paths[k], secret ? 0o600 : 0o644);
  }
  return paths;
}

/** True when every file of the PKI exists in `dir`. */
export function hasLocalPki(dir: string): boolean {
  return allPaths(pkiPaths(dir)).every((p) => existsSync(p));
}
