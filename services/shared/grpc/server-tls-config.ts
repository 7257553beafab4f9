/**
 * The `tls` section of a gRPC server process's config (the NLB and the module controllers):
 * a certificate and key turn TLS on; `caFile` + `requireClientCert` make it mutual.
 */
import { z } from 'zod';
import type { ServerTlsOptions } from './server.js';

export const serverTlsSchema = z
  .object({
    certFile: z.string().optional(),
    keyFile: z.string().optional(),
    caFile: z.string().optional(),
    requireClientCert: z.boolean().default(false),
  })
  .strict()
  // Half a pair must not quietly serve plaintext.
  .superRefine((t, ctx) => {
    if (!t.certFile !== !t.keyFile)
      ctx.addIssue({
        code: 'custom',
        path: [t.certFile ? 'keyFile' : 'certFile'],
        message: 'certFile and keyFile go together: set both to serve TLS, or neither for plaintext',
      });
    else if (!t.certFile && (t.caFile || t.requireClientCert))
      ctx.addIssue({
        code: 'custom',
        path: [t.caFile ? 'caFile' : 'requireClientCert'],
        message: 'client certificates (caFile, requireClientCert) need TLS: set certFile and keyFile too',
      });
  })
  .default({ requireClientCert: false });

/** The server's TLS options, or undefined (plaintext) without both a certificate and a key. */
export function serverTlsOptions(tls: z.infer<typeof serverTlsSchema>): ServerTlsOptions | undefined {
  if (!tls.certFile || !tls.keyFile) return undefined;
  return {
    certFile: tls.certFile,
    keyFile: tls.keyFile,
    caFile: tls.caFile,
    requireClientCert: tls.requireClientCert,
  };
}
