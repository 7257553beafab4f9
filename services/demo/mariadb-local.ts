/**
 * A private MariaDB server for the local stack: its own data directory under the stack's
 * (mariadb-install-db on first run), 127.0.0.1 only, the socket in a private directory, and a
 * `demo` database with a `demo`@127.0.0.1 user whose random password is kept in the data
 * directory (0600). root may log in only over that socket: the TCP root accounts the installer
 * creates without a password are dropped. The server is a child of this process.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  canConnect,
  freePort,
  isRoot,
  logTail,
  privateSocketDir,
  run,
  stopChild,
  stopLeftover,
  waitUntil,
} from './local-process.js';
import { DEMO_DB, demoPassword, type LocalDatabase } from './postgres-local.js';

export interface MariadbBinaries {
  mariadbd: string;
  installDb: string;
  /** The `mariadb` (or `mysql`) client. */
  client: string;
}

/** Starts (installing on first run) MariaDB in `<dataDir>/mariadb` on `port` (0: a free one). */
export async function startLocalMariadb(
  bins: MariadbBinaries,
  dataDir: string,
  port: number,
): Promise<LocalDatabase> {
  const dir = resolve(dataDir, 'mariadb');
  const data = join(dir, 'data');
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  const user = isRoot() ? ['--user=root'] : [];
  const password = demoPassword(join(dir, 'demo-password'));
  const sockets = privateSocketDir(dir, 'mpctl-maria-');
  const socket = join(sockets.path, 'mariadb.sock');
  const pidFile = join(dir, 'mariadb.pid');

  if (!existsSync(join(data, 'mysql'))) {
    rmSync(data, { recursive: true, force: true });
    try {
      await run(
        bins.installDb,
        [
          '--no-defaults',
          `--datadir=${data}`,
          `--tmpdir=${tmp}`,
          '--auth-root-authentication-method=normal',
          '--skip-test-db',
          ...user,
        ],
        { timeoutMs: 120_000 },
      );
    } catch (e) {
      rmSync(data, { recursive: true, force: true });
      sockets.remove();
      throw e;
    }
  } else {
    const left = await stopLeftover(pidFile, data);
    if (left) process.stderr.write(`stopped MariaDB pid ${left} left running by an earlier mpctl dev\n`);
  }
  const chosen = port || (await freePort());
  const log = join(dir, 'mariadb.log');
  const child = spawn(
    bins.mariadbd,
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--tmpdir=${tmp}`,
      `--socket=${socket}`,
      `--port=${chosen}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=32M',
      `--pid-file=${pidFile}`,
      `--log-error=${log}`,
      ...user,
    ],
    { stdio: 'ignore' },
  );
  let exited: string | undefined;
  child.once(
    'exit',
    (code, signal) => (exited = `mariadbd exited (${signal ?? `code ${code}`}): ${logTail(log)}`),
  );
  child.once('error', (e) => (exited = `mariadbd could not run: ${e.message}`));
  const stop = async () => {
    await stopChild(child, 20_000);
    sockets.remove();
  };
  try {
    await waitUntil(
      'MariaDB',
      async () => existsSync(socket) && (await canConnect(chosen)),
      60_000,
      () => exited,
    );
    const sql = (statements: string) =>
      run(bins.client, ['--no-defaults', '-S', socket, '-u', 'root', '-N', '-B', '-e', statements], {
        timeoutMs: 30_000,
      });
    // The installer's root@127.0.0.1, root@::1 and root@<hostname> have no password.
    const tcpRoots = (await sql("SELECT host FROM mysql.user WHERE user = 'root' AND host <> 'localhost'"))
      .split('\n')
      .map((h) => h.trim())
      .filter(Boolean);
    const pw = password.replace(/'/g, "''");
    await sql(
      [
        ...tcpRoots.map((h) => `DROP USER IF EXISTS 'root'@'${h.replace(/'/g, "''")}'`),
        `CREATE DATABASE IF NOT EXISTS ${DEMO_DB.database}`,
        `CREATE USER IF NOT EXISTS '${DEMO_DB.user}'@'127.0.0.1' IDENTIFIED BY '${pw}'`,
        `ALTER USER '${DEMO_DB.user}'@'127.0.0.1' IDENTIFIED BY '${pw}'`,
        `GRANT ALL ON ${DEMO_DB.database}.* TO '${DEMO_DB.user}'@'127.0.0.1'`,
        '',
      ].join(';\n'),
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    name: 'MariaDB',
    protocol: 'mysql',
    address: `127.0.0.1:${chosen}`,
    port: chosen,
    ...DEMO_DB,
    password,
    dir,
    stop,
  };
}
