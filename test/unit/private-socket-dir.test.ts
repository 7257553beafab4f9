import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_SOCKET_DIR, privateSocketDir } from '../../services/demo/local-process.js';

const made: string[] = [];
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

function base(): string {
  const d = mkdtempSync(join(tmpdir(), 'mp-sock-'));
  made.push(d);
  return d;
}

describe('privateSocketDir', () => {
  it('uses <dir>/run when the path is short enough, private, and keeps it on remove()', () => {
    const dir = base();
    const s = privateSocketDir(dir, 'mp-test-');
    expect(s.path).toBe(join(dir, 'run'));
    expect(statSync(s.path).mode & 0o777).toBe(0o700);
    s.remove();
    expect(existsSync(s.path)).toBe(true);
  });

  it('uses a fresh temp dir when <dir>/run is too long for a socket, and remove() deletes it', () => {
    const dir = join(base(), 'x'.repeat(MAX_SOCKET_DIR));
    const s = privateSocketDir(dir, 'mp-test-');
    expect(s.path.startsWith(join(tmpdir(), 'mp-test-'))).toBe(true);
    expect(s.path.length).toBeLessThanOrEqual(MAX_SOCKET_DIR);
    expect(statSync(s.path).mode & 0o777).toBe(0o700);
    s.remove();
    expect(existsSync(s.path)).toBe(false);
  });
});
