/**
 * Plumbing shared by the third-party servers `mpctl dev` runs (PostgreSQL, MariaDB,
 * nginx-rtmp): bounded commands, free ports, bounded waits, stopping a child for sure, finding
 * a server a killed earlier run left behind, and running a command as the `postgres` user when
 * we are root (PostgreSQL refuses to run as root).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** True when this process runs as root. */
export const isRoot = (): boolean => process.getuid?.() === 0;

/** Runs a command with a time budget; the error carries the end of its stderr. */
export async function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; asUser?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const [c, a] = opts.asUser ? ['runuser', ['-u', opts.asUser, '--', cmd, ...args]] : [cmd, args];
  try {
    const { stdout } = await execFileAsync(c, a, {
      timeout: opts.timeoutMs ?? 30_000,
      env: opts.env ?? process.env,
      maxBuffer: 4 * 1024 * 1024,
    });
    return stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string; killed?: boolean };
    const why = err.killed
      ? `timed out after ${opts.timeoutMs ?? 30_000} ms`
      : lastLines(err.stderr ?? err.message);
    throw new Error(`${cmd.split('/').pop()} failed: ${why}`, { cause: e });
  }
}

/** The last few non-empty lines of `text`, joined with " | ". */
export function lastLines(text: string, n = 3): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');
}

/** The last lines of a log file ("" when it cannot be read). */
export function logTail(path: string, n = 3): string {
  try {
    return lastLines(readFileSync(path, 'utf8'), n);
  } catch {
    return '';
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Whether 127.0.0.1:port accepts a TCP connection now (within 500 ms). */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      clearTimeout(t);
      c.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), 500);
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
  });
}

/**
 * Polls `probe` every 100 ms until it is true; throws after `timeoutMs`, or at once when
 * `failed` returns a reason (e.g. the server process exited).
 */
export async function waitUntil(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  failed: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    const reason = failed();
    if (reason) throw new Error(`${what}: ${reason}`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sends SIGTERM, then SIGKILL after `timeoutMs`; resolves when the child has exited. */
export function stopChild(c: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Stops the server a previous run left behind when it was killed before it could stop it (its
 * pid file still names a live process whose command line mentions `marker`, our private
 * directory), so that it does not hold the port or the data directory. Returns its pid, if any.
 */
export async function stopLeftover(pidFile: string, marker: string): Promise<number | undefined> {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0].trim());
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return undefined;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    // No /proc (macOS): trust the pid file in our private directory.
    cmdline = marker;
  }
  if (!cmdline.includes(marker)) return undefined;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  return pid;
}

/** The uid and gid of a user from /etc/passwd, if there is such a user. */
export function userIds(name: string): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${name}:`));
    if (!line) return undefined;
    const parts = line.split(':');
    return { uid: Number(parts[2]), gid: Number(parts[3]) };
  } catch {
    return undefined;
  }
}

/** Unix socket paths are limited to about 107 bytes; leave room for the file name. */
export const MAX_SOCKET_DIR = 80;

/**
 * A private directory (0700, owned by `owner` when given) for a server's unix socket:
 * `<dir>/run`, or a fresh one under the system temp dir when that path is too long for a socket.
 * `remove()` deletes the temp one (call it when the server stops or fails to start); `<dir>/run`
 * stays with the server's other files.
 */
export function privateSocketDir(
  dir: string,
  tempPrefix: string,
  owner?: { uid: number; gid: number },
): { path: string; remove(): void } {
  const inDir = join(dir, 'run');
  const temp = inDir.length > MAX_SOCKET_DIR;
  const path = temp ? mkdtempSync(join(tmpdir(), tempPrefix)) : inDir;
  mkdirSync(path, { recursive: true, mode: 0o700 });
  if (owner) chownSync(path, owner.uid, owner.gid);
  return { path, remove: () => (temp ? rmSync(path, { recursive: true, force: true }) : undefined) };
}
