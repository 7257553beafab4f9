/**
 * `mpctl dev` end to end, as a user runs it: the whole local stack in a child process with
 * mutual TLS, authentication and (when installed) the third-party backends, on free ports, in
 * a temp data directory. The CLI reaches it through the config file the stack writes; psql
 * reaches PostgreSQL through the NLB's postgres listener and the DBLB. SIGTERM must leave no
 * process behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectSystemBackends } from '../../services/demo/system-backends.js';
import { exitCodeOf, mpctl, REPO_ROOT } from '../cli/support/oclif.js';

const run = promisify(execFile);
const postgres = detectSystemBackends(process.env.PATH ?? '')[0];
const pgReady = Boolean(postgres.binaries);
if (!pgReady)
  process.stderr.write(
    `\n*** SKIPPED psql through mpctl dev: PostgreSQL not installed (${postgres.install}) ***\n\n`,
  );

let root: string;
let dataDir: string;
let child: ChildProcess;
let banner = '';
let stderr = '';

/** The port of the NLB listener `name` from the banner's "Listeners" line. */
const listenerPort = (name: string) => Number(new RegExp(`\\b${name} :(\\d+)`).exec(banner)?.[1]);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'mpctl-dev-'));
  // The postgres user (PostgreSQL refuses root) must reach the data directory.
  chmodSync(root, 0o755);
  dataDir = join(root, 'stack');
  child = spawn(
    process.execPath,
    [
      join(REPO_ROOT, 'bin/dev.js'),
      'dev',
      '--free-ports',
      '--tls',
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  child.stdout!.on('data', (b: Buffer) => (banner += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-8000)));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`mpctl dev not up after 150 s: ${banner}\n${stderr}`)),
      150_000,
    );
    const check = () => {
      if (banner.includes('Press Ctrl-C to stop.')) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`mpctl dev exited with ${code}: ${banner}\n${stderr}`));
    });
  });
}, 160_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const code = await Promise.race([
      exited,
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000)),
    ]);
    if (code === 'timeout') child.kill('SIGKILL');
    expect(code, stderr).not.toBe('timeout');
  }
  // Nothing started by the stack may survive it: servers and instances all name the data dir.
  const { stdout } = await run('ps', ['-eo', 'pid,args'], { timeout: 10_000 });
  const left = stdout.split('\n').filter((l) => l.includes(dataDir) && !l.includes(' ps '));
  rmSync(root, { recursive: true, force: true });
  expect(left).toEqual([]);
}, 90_000);

describe('mpctl dev --tls', () => {
  const config = () => join(dataDir, 'mpctl.json');

  it('generates private tokens, a PKI and a config file, and never prints a token', () => {
    const tokens = ['admin', 'module', 'read'].map((r) =>
      readFileSync(join(dataDir, 'auth', `${r}.token`), 'utf8').trim(),
    );
    for (const t of tokens) {
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(banner).not.toContain(t);
      expect(stderr).not.toContain(t);
    }
    expect(JSON.parse(readFileSync(config(), 'utf8'))).toMatchObject({
      nlb: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      tokenFile: 'auth/admin.token',
      tls: { ca: 'certs/ca.crt', cert: 'certs/client.crt', key: 'certs/client.key' },
    });
    expect(banner).toContain('auth on, mutual TLS');
    expect(existsSync(join(dataDir, 'certs', 'server.key'))).toBe(true);
  });

  it('answers the CLI through its config file over mutual TLS with the admin token', async () => {
    let instances: Array<{ moduleType?: string; healthStatus?: string }> = [];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const out = await mpctl(['modules', 'list', '--config', config(), '--json']);
      expect(exitCodeOf(out), out.stderr).toBe(0);
      instances = (JSON.parse(out.stdout) as { modules?: typeof instances }).modules ?? [];
      if (instances.length >= 4) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(instances.map((i) => i.moduleType).sort()).toEqual([
      'MODULE_TYPE_AILB',
      'MODULE_TYPE_ALB',
      'MODULE_TYPE_DBLB',
      'MODULE_TYPE_RTMP',
    ]);
  });

  it('refuses a caller without a token, and one without a client certificate', async () => {
    const file = JSON.parse(readFileSync(config(), 'utf8')) as { nlb: string };
    const empty = join(root, 'empty.json');
    writeFileSync(empty, '{}');
    const certs = (f: string) => join(dataDir, 'certs', f);
    const noToken = await mpctl([
      'status',
      '--config',
      empty,
      '--nlb',
      file.nlb,
      '--ca',
      certs('ca.crt'),
      '--cert',
      certs('client.crt'),
      '--key',
      certs('client.key'),
    ]);
    expect(exitCodeOf(noToken)).toBe(5);
    const noCert = await mpctl([
      'status',
      '--config',
      empty,
      '--nlb',
      file.nlb,
      '--ca',
      certs('ca.crt'),
      '--timeout',
      '3s',
    ]);
    expect(exitCodeOf(noCert)).toBe(4);
  });

  it.skipIf(!pgReady)('runs a query through the NLB postgres listener, the DBLB and PostgreSQL', async () => {
    expect(banner).toMatch(/PostgreSQL\s+127\.0\.0\.1:\d+\s+\(DBLB backend/);
    const password = readFileSync(join(dataDir, 'postgres', 'demo-password'), 'utf8').trim();
    const port = listenerPort('postgres');
    const psql = postgres.binaries!.psql;
    let last = '';
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      try {
        const { stdout } = await run(
          psql,
          [
            '-X',
            '-A',
            '-t',
            '-h',
            '127.0.0.1',
            '-p',
            String(port),
            '-U',
            'demo',
            '-d',
            'demo',
            '-c',
            'select current_user, 40 + 2',
          ],
          { timeout: 10_000, env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' } },
        );
        expect(stdout.trim()).toBe('demo|42');
        return;
      } catch (e) {
        last = String((e as { stderr?: string }).stderr ?? e);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    throw new Error(`psql through the NLB never succeeded: ${last}`);
  });
});
