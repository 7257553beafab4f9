/**
 * `mpctl certs init`: the files and their modes, refusing to overwrite, bad hosts; and the
 * chain it makes carries a real gRPC call over mutual TLS, while a client or server from
 * another CA is refused.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLocalPki, hostProblems, pkiPaths, type LocalPki } from '../../cli/local-pki.js';
import { unaryCall } from '../../services/shared/grpc/client.js';
import { createHarness, rejectionOf } from '../integration/grpc-fixture.js';
import { exitCodeOf, mpctl } from './support/oclif.js';

let root: string;
let dir: string;
let other: LocalPki;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'mpctl-certs-'));
  dir = join(root, 'certs');
  const made = await mpctl(['certs', 'init', '--dir', dir]);
  expect(exitCodeOf(made), made.stderr).toBe(0);
  expect(made.stdout).toContain('server.crt');
  const otherDir = join(root, 'other');
  expect(exitCodeOf(await mpctl(['certs', 'init', '--dir', otherDir, '--json']))).toBe(0);
  other = pkiPaths(otherDir);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const h = createHarness();
afterEach(() => h.closeAll());

describe('mpctl certs init', () => {
  it('writes a CA, a server and a client certificate, keys 0600 in a 0700 directory', () => {
    const p = pkiPaths(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const key of [p.caKey, p.serverKey, p.clientKey]) expect(statSync(key).mode & 0o777).toBe(0o600);
    const ca = new X509Certificate(readFileSync(p.caCert));
    const server = new X509Certificate(readFileSync(p.serverCert));
    const client = new X509Certificate(readFileSync(p.clientCert));
    expect(ca.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.verify(ca.publicKey) && client.verify(ca.publicKey)).toBe(true);
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.checkIP('::1')).toBe('::1');
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkHost('example.com')).toBeUndefined();
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(client.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  });

  it('refuses to overwrite without --force, and replaces everything with it', async () => {
    const before = readFileSync(pkiPaths(dir).caCert, 'utf8');
    const again = await mpctl(['certs', 'init', '--dir', dir]);
    expect(exitCodeOf(again)).toBe(1);
    expect(again.error?.message).toMatch(/already exist.*--force/);
    expect(readFileSync(pkiPaths(dir).caCert, 'utf8')).toBe(before);
    const forced = join(root, 'forced');
    expect(exitCodeOf(await mpctl(['certs', 'init', '--dir', forced]))).toBe(0);
    const first = readFileSync(pkiPaths(forced).caCert, 'utf8');
    expect(exitCodeOf(await mpctl(['certs', 'init', '--dir', forced, '--force']))).toBe(0);
    expect(readFileSync(pkiPaths(forced).caCert, 'utf8')).not.toBe(first);
    expect(statSync(pkiPaths(forced).serverKey).mode & 0o777).toBe(0o600);
  });

  it('says which --hosts entry is wrong (exit 2)', async () => {
    const bad = await mpctl(['certs', 'init', '--dir', join(root, 'bad'), '--hosts', '127.0.0.1,bad_host!']);
    expect(exitCodeOf(bad)).toBe(2);
    expect(bad.error?.message).toContain('"bad_host!" is neither an IP address nor a DNS name');
    expect(hostProblems([])).toHaveLength(1);
    expect(() => createLocalPki(['nope nope'])).toThrow(/neither/);
  });
});

describe('the chain over gRPC with mutual TLS', () => {
  const p = () => pkiPaths(dir);
  const mtls = () => ({
    certFile: p().serverCert,
    keyFile: p().serverKey,
    caFile: p().caCert,
    requireClientCert: true,
  });
  const status = (client: ReturnType<typeof h.nlbClient>) =>
    unaryCall(client, 'getNlbStatus', { includeModules: false }, { timeoutMs: 5_000 });

  it('carries a call from a client with the client certificate, by IP and by name', async () => {
    const { port, target } = await h.startServer({ tls: mtls() });
    const tls = { caFile: p().caCert, certFile: p().clientCert, keyFile: p().clientKey };
    expect((await status(h.nlbClient({ target, tls }))).version).toBe('1.2.3');
    expect((await status(h.nlbClient({ target: `localhost:${port}`, tls }))).version).toBe('1.2.3');
  });

  it('is refused by a client that trusts another CA', async () => {
    const { target } = await h.startServer({ tls: mtls() });
    const tls = { caFile: other.caCert, certFile: other.clientCert, keyFile: other.clientKey };
    expect((await rejectionOf(status(h.nlbClient({ target, tls })))).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a client certificate from another CA, and a client without one', async () => {
    const { target } = await h.startServer({ tls: mtls() });
    const stranger = { caFile: p().caCert, certFile: other.clientCert, keyFile: other.clientKey };
    expect((await rejectionOf(status(h.nlbClient({ target, tls: stranger })))).code).toBe(
      grpc.status.UNAVAILABLE,
    );
    const anonymous = { caFile: p().caCert };
    expect((await rejectionOf(status(h.nlbClient({ target, tls: anonymous })))).code).toBe(
      grpc.status.UNAVAILABLE,
    );
  });
});
