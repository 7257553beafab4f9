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
