/**
 * A private PostgreSQL server for the local stack: its own data directory under the stack's
 * (initdb on first run), 127.0.0.1 only, a Unix socket in a private directory, and a `demo`
 * database owned by a `demo` role with a random password kept in the data directory (0600).
 * Runs as the current user, or as `postgres` when we are root (PostgreSQL refuses root).
 * pg_ctl starts and stops it; a server a killed earlier run left behind is stopped first.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, isRoot, logTail, privateSocketDir, run, stopLeftover, userIds } from './local-process.js';

/** A running demo database server (PostgreSQL or MariaDB). */
export interface LocalDatabase {
  name: string;
  protocol: 'postgres' | 'mysql';
  /** 127.0.0.1:port. */
  address: string;
  port: number;
  /** The demo database and the role that owns it. */
  database: string;
  user: string;
  password: string;
  dir: string;
  stop(): Promise<void>;
}

export interface PostgresBinaries {
  /** The directory with postgres, initdb, pg_ctl (and usually psql). */
  binDir: string;
  psql: string;
}

export const DEMO_DB = { database: 'demo', user: 'demo' };

/** A password kept in `file` (created 0600 on first use), so it stays the same across runs. */
export function demoPassword(file: string): string {
  if (existsSync(file)) {
    const p = readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{16,}$/.test(p)) return p;
  }
  const p = randomBytes(18).toString('base64url');
  writeFileSync(file, `${p}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return p;
}

/** Starts (initialising on first run) PostgreSQL in `<dataDir>/postgres` on `port` (0: a free one). */
export async function startLocalPostgres(
  bins: PostgresBinaries,
  dataDir: string,
  port: number,
): Promise<LocalDatabase> {
  const dir = resolve(dataDir, 'postgres');
  const data = join(dir, 'data');
  const root = isRoot();
  const owner = root ? userIds('postgres') : undefined;
  if (root && !owner)
    throw new Error(
      'running as root, and PostgreSQL refuses root: add a postgres user (the postgresql package does)',
    );
  const asUser = root ? 'postgres' : undefined;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (owner) chownSync(dir, owner.uid, owner.gid);
  if (asUser) {
    // The postgres user must reach the directory through every parent (e.g. not under /root).
    await run('test', ['-w', dir], { asUser }).catch(() => {
      throw new Error(
        `the postgres user cannot write ${dir} (a parent directory is closed to it): use a --data-dir it can reach, or run as a regular user`,
      );
    });
  }
  const password = demoPassword(join(dir, 'demo-password'));
  // The socket directory is private (only the server's user may enter it): local connections trust.
  const chosen = port || (await freePort());
  const sockets = privateSocketDir(dir, 'mpctl-pg-', owner);
  const socketDir = sockets.path;
  const pg = (tool: string) => join(bins.binDir, tool);
  try {
    if (!existsSync(join(data, 'PG_VERSION'))) {
      rmSync(data, { recursive: true, force: true });
      try {
        await run(
          pg('initdb'),
          ['-D', data, '-U', 'postgres', '-E', 'UTF8', '--auth-local=trust', '--auth-host=scram-sha-256'],
          { asUser, timeoutMs: 120_000 },
        );
      } catch (e) {
        // Half an initdb would fail the same way next time: start over then.
        rmSync(data, { recursive: true, force: true });
        throw e;
      }
    } else {
      const left = await stopLeftover(join(data, 'postmaster.pid'), data);
      if (left) process.stderr.write(`stopped PostgreSQL pid ${left} left running by an earlier mpctl dev\n`);
    }
    writeFileSync(
      join(data, 'pg_hba.conf'),
      [
        'local all all trust',
        'host all all 127.0.0.1/32 scram-sha-256',
        'host all all ::1/128 scram-sha-256',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(data, 'postgresql.auto.conf'),
      [
        '# Written by mpctl dev on every start.',
        `port = ${chosen}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${socketDir.replace(/'/g, "''")}'`,
        "password_encryption = 'scram-sha-256'",
        '',
      ].join('\n'),
    );
    if (owner)
      for (const f of ['pg_hba.conf', 'postgresql.auto.conf']) chownSync(join(data, f), owner.uid, owner.gid);
    const log = join(dir, 'postgres.log');
    await run(pg('pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '60', 'start'], {
      asUser,
      timeoutMs: 70_000,
    }).catch((e: Error) => {
      throw new Error(`${e.message}${logTail(log) ? ` (log: ${logTail(log)})` : ''}`);
    });
  } catch (e) {
    sockets.remove(); // a temp socket dir must not outlive a failed start
    throw e;
  }
  const stop = async () => {
    await run(pg('pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop'], {
      asUser,
      timeoutMs: 40_000,
    }).catch(() => undefined);
    sockets.remove();
  };
  try {
    const psql = (sql: string, db = 'postgres') =>
      run(
        bins.psql,
        [
          '-X',
          '-q',
          '-t',
          '-A',
          '-v',
          'ON_ERROR_STOP=1',
          '-h',
          socketDir,
          '-p',
          String(chosen),
          '-U',
          'postgres',
          '-d',
          db,
          '-c',
          sql,
        ],
        {
          timeoutMs: 30_000,
        },
      );
    const quoted = `'${password.replace(/'/g, "''")}'`;
    const role = (await psql(`SELECT 1 FROM pg_roles WHERE rolname = '${DEMO_DB.user}'`)).trim();
    await psql(`${role ? 'ALTER' : 'CREATE'} ROLE ${DEMO_DB.user} LOGIN PASSWORD ${quoted}`);
    const db = (await psql(`SELECT 1 FROM pg_database WHERE datname = '${DEMO_DB.database}'`)).trim();
    if (!db) await psql(`CREATE DATABASE ${DEMO_DB.database} OWNER ${DEMO_DB.user}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    name: 'PostgreSQL',
    protocol: 'postgres',
    address: `127.0.0.1:${chosen}`,
    port: chosen,
    ...DEMO_DB,
    password,
    dir,
    stop,
  };
}
