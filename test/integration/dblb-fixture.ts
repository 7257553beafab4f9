/**
 * Real database servers and DBLB instances for the DBLB tests and benchmark: PostgreSQL 15
 * (initdb + pg_ctl, as the `postgres` user when running as root, socket dir and data in a temp
 * dir, on a free port), MariaDB (mariadb-install-db + mariadbd), PgBouncer, and a DBLB instance
 * on the real module runtime with an offline NLB API (no NLB needed). Everything started is
 * stopped by `closeAll()`; every wait is bounded.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ModuleInstanceRuntime, type InstanceSnapshot } from '../../services/modules/runtime/instance.js';
import type { NlbApi } from '../../services/modules/runtime/nlb-api.js';
import type { ModuleTypePlugin } from '../../services/modules/runtime/plugin.js';
import type { RateLimitSpec } from '../../services/modules/runtime/token-bucket.js';
import { createSystemClock } from '../../services/shared/clock.js';
import { silentLogger, type Logger } from '../../services/shared/logger.js';
import { canConnect, freePort, userIds } from '../../services/demo/local-process.js';

const run = promisify(execFile);

export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** Which third-party binaries are here; tests skip loudly when one is missing. */
export const tools = {
  postgres: existsSync(`${PG_BIN}/initdb`) && existsSync(`${PG_BIN}/pg_ctl`),
  pgbench: existsSync(`${PG_BIN}/pgbench`) || existsSync('/usr/bin/pgbench'),
  pgbouncer: existsSync('/usr/sbin/pgbouncer'),
  mariadb: existsSync('/usr/sbin/mariadbd') && existsSync('/usr/bin/mariadb-install-db'),
  psql: existsSync('/usr/bin/psql'),
  openssl: existsSync('/usr/bin/openssl'),
};

/** Prints a loud line when a test file is skipped for a missing binary. */
export function skipNotice(what: string, packages: string): void {
  process.stderr.write(
    `\n*** SKIPPED: ${what} not installed (Debian: apt-get install -y ${packages}) ***\n\n`,
  );
}

/** A TCP port that was free a moment ago. */

// Shared with `mpctl dev`'s local servers (services/demo/local-process.ts).
export { canConnect, freePort };

/** The uid and gid of the `postgres` user (root hands it the temp dirs initdb and pg_ctl use). */
function postgresIds(): { uid: number; gid: number } {
  const ids = userIds('postgres');
  if (!ids) throw new Error('no postgres user: install PostgreSQL (apt-get install postgresql)');
  return ids;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until `probe` is truthy; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | false | null | undefined | Promise<T | false | null | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = String(e);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} ${last}`);
    await sleep(50);
  }
}

/** Runs a command; `asPostgres` runs it as the postgres user when we are root (initdb refuses root). */
async function sh(cmd: string, args: string[], opts: { asPostgres?: boolean; timeoutMs?: number } = {}) {
  const root = process.getuid?.() === 0;
  const [c, a] = opts.asPostgres && root ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return run(c, a, { timeout: opts.timeoutMs ?? 30_000 });
}

export interface PgServer {
  port: number;
  address: string;
  dataDir: string;
  /** psql-style run of one SQL statement as the superuser `postgres`; returns stdout. */
  sql(statement: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

export interface MariaServer {
  port: number;
  address: string;
  socket: string;
  stop(): Promise<void>;
}

export interface StartedChild {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

function stopChild(c: ChildProcess, timeoutMs = 5_000): Promise<void> {
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

/** Writes a self-signed certificate and key for 127.0.0.1 into `dir`. */
export async function selfSigned(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  await run(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { timeout: 20_000 },
  );
  return { cert, key };
}

/** Starts and stops database servers, DBLB instances and temp dirs for one test file. */
export function createDbHarness(logger: Logger = silentLogger()) {
  const cleanups: Array<() => Promise<void>> = [];
  const dirs: string[] = [];
  let pgTemplate: Promise<string> | null = null;

  /** One initdb per harness; every server starts from a copy of it. */
  const initdbTemplate = async (): Promise<string> => {
    const template = join(tempDir(true), 'data');
    await sh(
      `${PG_BIN}/initdb`,
      ['-D', template, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'],
      {
        asPostgres: true,
      },
    );
    writeFileSync(
      join(template, 'pg_hba.conf'),
      [
        'local all all trust',
        'host all postgres 127.0.0.1/32 trust',
        'host all all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    );
    return template;
  };

  const tempDir = (forPostgres = false): string => {
    const d = mkdtempSync(join(tmpdir(), 'mp-dblb-'));
    dirs.push(d);
    chmodSync(d, 0o755);
    if (forPostgres && process.getuid?.() === 0) {
      const { uid, gid } = postgresIds();
      chownSync(d, uid, gid);
    }
    return d;
  };

  const h = {
    tempDir,
    /**
     * A PostgreSQL 15 server: superuser `postgres` trusted from 127.0.0.1; every other role
     * authenticates with SCRAM-SHA-256. `tls` turns ssl on with a self-signed certificate.
     */
    async startPostgres(
      opts: { tls?: boolean; maxConnections?: number; conf?: string[] } = {},
    ): Promise<PgServer> {
      const dir = tempDir(true);
      const dataDir = join(dir, 'data');
      pgTemplate ??= initdbTemplate();
      cpSync(await pgTemplate, dataDir, { recursive: true });
      if (process.getuid?.() === 0) await run('chown', ['-R', 'postgres:postgres', dataDir]);
      const port = await freePort();
      const conf = [
        `port = ${port}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${dir}'`,
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        `max_connections = ${opts.maxConnections ?? 100}`,
        "password_encryption = 'scram-sha-256'",
        ...(opts.conf ?? []),
      ];
      if (opts.tls) {
        const { cert, key } = await selfSigned(dir);
        if (process.getuid?.() === 0) await run('chown', ['postgres:postgres', cert, key]);
        chmodSync(key, 0o600);
        conf.push('ssl = on', `ssl_cert_file = '${cert}'`, `ssl_key_file = '${key}'`);
      }
      writeFileSync(join(dataDir, 'postgresql.auto.conf'), conf.join('\n') + '\n');
      if (process.getuid?.() === 0)
        await run('chown', ['postgres:postgres', join(dataDir, 'postgresql.auto.conf')]);
      await sh(`${PG_BIN}/pg_ctl`, ['-D', dataDir, '-l', join(dir, 'log'), '-w', '-t', '20', 'start'], {
        asPostgres: true,
      });
      const stop = async () => {
        await sh(`${PG_BIN}/pg_ctl`, ['-D', dataDir, '-m', 'immediate', '-w', '-t', '10', 'stop'], {
          asPostgres: true,
        }).catch(() => undefined);
      };
      cleanups.push(stop);
      return {
        port,
        address: `127.0.0.1:${port}`,
        dataDir,
        sql: async (statement, database = 'postgres') =>
          (
            await run(
              'psql',
              [
                '-X',
                '-q',
                '-t',
                '-A',
                '-v',
                'ON_ERROR_STOP=1',
                '-h',
                '127.0.0.1',
                '-p',
                String(port),
                '-U',
                'postgres',
                '-d',
                database,
                '-c',
                statement,
              ],
              { timeout: 20_000 },
            )
          ).stdout.trim(),
        stop,
      };
    },

    /** A MariaDB server with root@127.0.0.1 (no password) and the given SQL run at start. */
    async startMariadb(setup: string[] = []): Promise<MariaServer> {
      const dir = tempDir();
      const dataDir = join(dir, 'data');
      // A private tmpdir: servers sharing /tmp collide on their temporary table names.
      const tmp = join(dir, 'tmp');
      mkdirSync(tmp, { recursive: true });
      await run(
        'mariadb-install-db',
        [
          '--no-defaults',
          `--datadir=${dataDir}`,
          `--tmpdir=${tmp}`,
          '--auth-root-authentication-method=normal',
          '--skip-test-db',
          '--user=root',
        ],
        { timeout: 60_000 },
      );
      const port = await freePort();
      const socket = join(dir, 'sock');
      const child = spawn(
        '/usr/sbin/mariadbd',
        [
          '--no-defaults',
          `--datadir=${dataDir}`,
          `--tmpdir=${tmp}`,
          `--socket=${socket}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          '--user=root',
          '--skip-log-bin',
          '--innodb-buffer-pool-size=16M',
          '--skip-name-resolve',
          `--pid-file=${join(dir, 'pid')}`,
        ],
        { stdio: 'ignore' },
      );
      const stop = () => stopChild(child, 10_000);
      cleanups.push(stop);
      await waitFor('mariadbd to listen', () => existsSync(socket), 30_000);
      if (setup.length)
        await run('mariadb', ['--no-defaults', '-S', socket, '-u', 'root', '-e', setup.join(';\n')], {
          timeout: 20_000,
        });
      return { port, address: `127.0.0.1:${port}`, socket, stop };
    },

    /**
     * PgBouncer in session mode in front of `pg`, every database and user passed through
     * (trust); `prefix` runs it under e.g. `taskset -c 1`. `pid()` reads its pidfile.
     */
    async startPgbouncer(
      pg: PgServer,
      poolSize: number,
      prefix: string[] = [],
    ): Promise<StartedChild & { pid(): number }> {
      const dir = tempDir();
      const port = await freePort();
      const ini = join(dir, 'pgbouncer.ini');
      writeFileSync(join(dir, 'users.txt'), '"postgres" ""\n');
      writeFileSync(
        ini,
        [
          '[databases]',
          `* = host=127.0.0.1 port=${pg.port}`,
          '[pgbouncer]',
          'listen_addr = 127.0.0.1',
          `listen_port = ${port}`,
          `unix_socket_dir = ${dir}`,
          'auth_type = trust',
          `auth_file = ${join(dir, 'users.txt')}`,
          'pool_mode = session',
          `default_pool_size = ${poolSize}`,
          'max_client_conn = 1000',
          'ignore_startup_parameters = extra_float_digits,options',
          `logfile = ${join(dir, 'log')}`,
          `pidfile = ${join(dir, 'pgbouncer.pid')}`,
          '',
        ].join('\n'),
      );
      if (process.getuid?.() === 0) await run('chown', ['-R', 'postgres:postgres', dir]);
      const root = process.getuid?.() === 0;
      const argv = [
        ...prefix,
        ...(root ? ['runuser', '-u', 'postgres', '--'] : []),
        '/usr/sbin/pgbouncer',
        ini,
      ];
      const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
      const stop = () => stopChild(child);
      cleanups.push(stop);
      await waitFor('pgbouncer to listen', () => canConnect(port), 15_000);
      const pid = () => Number(readFileSync(join(dir, 'pgbouncer.pid'), 'utf8').trim());
      return { child, port, stop, pid };
    },

    /** A DBLB (or any module type) instance on the real runtime, with an NLB API that is always fine. */
    async startInstance(
      plugin: ModuleTypePlugin,
      config: unknown,
      opts: { rateLimits?: RateLimitSpec[]; maxConnections?: number } = {},
    ): Promise<{
      rt: ModuleInstanceRuntime;
      port: number;
      address: string;
      apply(config: unknown): Promise<void>;
    }> {
      const snapshot: InstanceSnapshot = {
        routes: [],
        rateLimits: opts.rateLimits ?? [],
        config: plugin.configSchema.parse(config),
        maxConnections: opts.maxConnections ?? 0,
      };
      const rt = new ModuleInstanceRuntime({
        id: `${plugin.type.toLowerCase()}-test-${Math.random().toString(36).slice(2, 8)}`,
        plugin,
        version: '1.0',
        clock: createSystemClock(),
        logger,
        nlb: offlineNlbApi(),
        controllerAddress: '127.0.0.1:1',
        host: '127.0.0.1',
        heartbeatIntervalMs: 60_000,
        snapshot,
      });
      await rt.start();
      cleanups.push(() => rt.stop(false, 0));
      const port = Number(rt.trafficAddress.split(':').pop());
      return {
        rt,
        port,
        address: rt.trafficAddress,
        apply: (c) => rt.apply({ ...snapshot, config: plugin.configSchema.parse(c) }),
      };
    },

    /** Registers extra cleanup (run in reverse order by closeAll). */
    onClose(fn: () => Promise<void>): void {
      cleanups.push(fn);
    },

    async closeAll(): Promise<void> {
      for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
      pgTemplate = null;
    },
  };
  return h;
}

/** An NlbApi that accepts everything: instances run without an NLB (tests, benchmarks). */
export function offlineNlbApi(): NlbApi {
  return {
    target: 'offline',
    register: () =>
      Promise.resolve({ success: true, message: '', registrationId: 'offline', error: undefined }),
    heartbeat: () =>
      Promise.resolve({
        acknowledged: true,
        message: '',
        shouldReload: false,
        shouldScale: false,
        instructions: {},
      } as never),
    unregister: () => Promise.resolve({ success: true, message: '' } as never),
    updateRouting: () => Promise.resolve({ success: true, message: '' } as never),
    updateDeployment: () => Promise.resolve({ success: true, message: '' } as never),
    close: () => undefined,
  };
}
