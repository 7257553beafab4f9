/**
 * Atomic JSON documents on disk: write to a temp file, fsync it, rename over the target, fsync
 * the directory. A crash at any point leaves either the old or the new document, never a mix.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { DomainError } from './errors.js';

/** Writes `data` to `path` atomically; throws an `unavailable` DomainError naming the cause. */
export function writeFileAtomic(path: string, data: string | Buffer): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(tmp, 'w', 0o600);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    try {
      const dfd = openSync(dir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      // Some filesystems refuse fsync on directories; the rename is still atomic.
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new DomainError(
      'unavailable',
      `could not save ${path} (${code}); the change was not applied`,
      { path, cause: code },
      { cause: e },
    );
  }
}

/** Reads a JSON document, or returns undefined when the file does not exist. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(
      `${path} is not valid JSON (${(e as Error).message}); restore it from a backup or move it away to start empty`,
      { cause: e },
    );
  }
}
