import { describe, expect, it } from 'vitest';
import { serverTlsOptions, serverTlsSchema } from '../../services/shared/grpc/server-tls-config.js';

describe('serverTlsSchema', () => {
  const problems = (tls: object) => {
    const r = serverTlsSchema.safeParse(tls);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('refuses half a certificate pair, and client-certificate settings without TLS', () => {
    expect(problems({ certFile: 'c.pem' })).toEqual([
      'keyFile: certFile and keyFile go together: set both to serve TLS, or neither for plaintext',
    ]);
    expect(problems({ keyFile: 'k.pem' })[0]).toMatch(/^certFile: /);
    expect(problems({ caFile: 'ca.pem' })[0]).toMatch(/^caFile: client certificates .* need TLS/);
    expect(problems({ requireClientCert: true })[0]).toMatch(/^requireClientCert: /);
  });

  it('takes plaintext (nothing set) and a full mutual-TLS section', () => {
    expect(serverTlsOptions(serverTlsSchema.parse(undefined))).toBeUndefined();
    const full = { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem', requireClientCert: true };
    expect(serverTlsOptions(serverTlsSchema.parse(full))).toEqual(full);
  });
});
