import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../services/shared/auth.js';
import { createClientConnection, unaryCall } from '../../services/shared/grpc/client.js';
import { createGrpcServer } from '../../services/shared/grpc/server.js';
import { silentLogger } from '../../services/shared/logger.js';
import { AUTH_CONFIG, createHarness, rejectionOf, TOKENS } from './grpc-fixture.js';
import { generateTlsFiles, type TlsFiles } from './tls-fixture.js';

let pki: TlsFiles;
beforeAll(() => {
  pki = generateTlsFiles();
});
afterAll(() => pki?.cleanup());

const h = createHarness();
afterEach(() => h.closeAll());

const status = (client: ReturnType<typeof h.nlbClient>) =>
  unaryCall(client, 'getNlbStatus', { includeModules: false }, { timeoutMs: 5_000 });

describe('gRPC over TLS', () => {
  it('serves a client that trusts the CA, by IP and by name, with auth on top', async () => {
    const { port, target } = await h.startServer({
      tls: { certFile: pki.serverCert, keyFile: pki.serverKey },
      auth: createAuthenticator(AUTH_CONFIG),
    });
    const byIp = await status(h.nlbClient({ target, token: TOKENS.read, tls: { caFile: pki.caCert } }));
    expect(byIp.details.principal).toBe('viewer');
    const byName = h.nlbClient({
      target: `localhost:${port}`,
      token: TOKENS.read,
      tls: { caFile: pki.caCert },
    });
    expect((await status(byName)).version).toBe('1.2.3');
  });

  it('is refused by a client that trusts another CA', async () => {
    const { target } = await h.startServer({ tls: { certFile: pki.serverCert, keyFile: pki.serverKey } });
    const err = await rejectionOf(status(h.nlbClient({ target, tls: { caFile: pki.otherCaCert } })));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('is refused by a plaintext client', async () => {
    const { target } = await h.startServer({ tls: { certFile: pki.serverCert, keyFile: pki.serverKey } });
    const err = await rejectionOf(status(h.nlbClient({ target })));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  describe('mutual TLS', () => {
    const mtls = () => ({
      certFile: pki.serverCert,
      keyFile: pki.serverKey,
      caFile: pki.caCert,
      requireClientCert: true,
    });

    it('refuses a client without a certificate', async () => {
      const { target } = await h.startServer({ tls: mtls() });
      const err = await rejectionOf(status(h.nlbClient({ target, tls: { caFile: pki.caCert } })));
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
    });

    it('accepts a client with a certificate from the CA', async () => {
      const { target } = await h.startServer({ tls: mtls() });
      const client = h.nlbClient({
        target,
        tls: { caFile: pki.caCert, certFile: pki.clientCert, keyFile: pki.clientKey },
      });
      expect((await status(client)).version).toBe('1.2.3');
    });

    it('refuses a client whose certificate another CA signed', async () => {
      const { target } = await h.startServer({ tls: mtls() });
      const client = h.nlbClient({
        target,
        tls: { caFile: pki.caCert, certFile: pki.strangerCert, keyFile: pki.strangerKey },
      });
      const err = await rejectionOf(status(client));
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
    });
  });

  describe('configuration errors', () => {
    it('names an unreadable certificate file', () => {
      expect(() =>
        createGrpcServer({
          logger: silentLogger(),
          tls: { certFile: `${pki.dir}/missing.crt`, keyFile: pki.serverKey },
        }),
      ).toThrow(`cannot read TLS certificate file ${pki.dir}/missing.crt: ENOENT`);
    });

    it('names a key file that is not PEM', () => {
      expect(() =>
        createGrpcServer({
          logger: silentLogger(),
          tls: { certFile: pki.serverCert, keyFile: `${pki.dir}/ca.srl` },
        }),
      ).toThrow(`TLS key file ${pki.dir}/ca.srl is not PEM`);
    });

    it('needs a CA to require client certificates', () => {
      expect(() =>
        createGrpcServer({
          logger: silentLogger(),
          tls: { certFile: pki.serverCert, keyFile: pki.serverKey, requireClientCert: true },
        }),
      ).toThrow(/needs a CA file/);
    });

    it('names an unreadable client CA file', () => {
      expect(() => createClientConnection({ target: 'x:1', tls: { caFile: `${pki.dir}/nope.pem` } })).toThrow(
        `cannot read CA file ${pki.dir}/nope.pem: ENOENT`,
      );
    });
  });
});
