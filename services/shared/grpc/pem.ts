/** Reading TLS material from files, with errors that name the file and what it was for. */
import { readFileSync } from 'node:fs';

/** Reads a PEM file; the error names `what` (e.g. "CA"), the path and the cause (ENOENT, EACCES…). */
export function readPemFile(path: string, what: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${what} file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      cause: e,
    });
  }
  if (!pem.includes('-----BEGIN ')) throw new Error(`${what} file ${path} is not PEM (no "-----BEGIN" line)`);
  return pem;
}
