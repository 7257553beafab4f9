/**
 * Which third-party servers the local stack can use as demo backends (PostgreSQL and MariaDB
 * for the DBLB, nginx with the RTMP module for RTMP), found by looking for their binaries,
 * with the companions `mpctl dev` needs to run a private copy of each (initdb and pg_ctl,
 * mariadb-install-db, the RTMP module's .so). It says which are there, which are missing and
 * the Debian packages that add them. File checks are injected, so this is testable.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

/** A third-party backend and whether it is installed. */
export interface SystemBackend {
  name: string;
  /** The module type it backs. */
  module: 'DBLB' | 'RTMP';
  /** The binary found, if any. */
  found?: string;
  /** How to install it on Debian/Ubuntu. */
  install: string;
  /** The binaries `mpctl dev` runs it with, when all are there. */
  binaries?: Record<string, string>;
  /** Found, but something needed to run a private copy is missing. */
  missing?: string;
}

/** The file system as detection sees it. */
export interface ProbeFs {
  exists(path: string): boolean;
  /** Entries of a directory ([] when it is missing). */
  list(dir: string): string[];
  /** A text file's content (throws when unreadable). */
  read?(path: string): string;
}

export const realFs: ProbeFs = {
  exists: existsSync,
  list: (dir) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  },
  read: (path) => readFileSync(path, 'utf8'),
};

/** The first of `names` on `pathVar` (PATH), then in `extraDirs`. */
function findBinary(fs: ProbeFs, pathVar: string, names: readonly string[], extraDirs: readonly string[]) {
  const dirs = [...pathVar.split(delimiter).filter(Boolean), ...extraDirs];
  for (const name of names) for (const dir of dirs) if (fs.exists(join(dir, name))) return join(dir, name);
  return undefined;
}

/** PostgreSQL's versioned bin directories (/usr/lib/postgresql/16/bin), newest first. */
function postgresDirs(fs: ProbeFs): string[] {
  return fs
    .list('/usr/lib/postgresql')
    .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }))
    .map((v) => `/usr/lib/postgresql/${v}/bin`);
}

/** The RTMP module's .so: where Debian puts it, or named by a load_module line of its conf snippet. */
function rtmpModuleSo(fs: ProbeFs, found: string | undefined): string | undefined {
  if (!found) return undefined;
  if (found.endsWith('.so')) return found;
  try {
    const m = /load_module\s+(\S+?);/.exec(fs.read?.(found) ?? '');
    return m && fs.exists(m[1]) ? m[1] : undefined;
  } catch {
    return undefined;
  }
}

const RTMP_MODULE_PATHS = [
  '/usr/lib/nginx/modules/ngx_rtmp_module.so',
  '/usr/share/nginx/modules-available/mod-rtmp.conf',
  '/etc/nginx/modules-enabled/50-mod-rtmp.conf',
];

/** The three backends with what was found of each. `pathVar` is the PATH to search. */
export function detectSystemBackends(pathVar: string, fs: ProbeFs = realFs): SystemBackend[] {
  const sbin = ['/usr/sbin', '/usr/local/sbin', '/sbin'];
  const usr = ['/usr/bin', '/usr/local/bin', ...sbin];
  const postgresBin = findBinary(fs, pathVar, ['postgres'], postgresDirs(fs));
  const postgres = postgresBin ?? findBinary(fs, pathVar, ['pg_ctlcluster'], sbin);
  const mariadb = findBinary(fs, pathVar, ['mariadbd', 'mysqld'], sbin);
  const nginx = findBinary(fs, pathVar, ['nginx'], sbin);
  const rtmp = nginx && RTMP_MODULE_PATHS.find((p) => fs.exists(p));
  const pg = postgresPieces(fs, pathVar, postgresBin, usr);
  const maria = mariadbPieces(fs, pathVar, mariadb, usr);
  const so = rtmpModuleSo(fs, rtmp);
  return [
    {
      name: 'PostgreSQL',
      module: 'DBLB',
      found: postgres,
      install: 'sudo apt-get install -y postgresql',
      ...(postgres ? pg : {}),
    },
    {
      name: 'MariaDB',
      module: 'DBLB',
      found: mariadb,
      install: 'sudo apt-get install -y mariadb-server',
      ...(mariadb ? maria : {}),
    },
    {
      name: 'nginx-rtmp',
      module: 'RTMP',
      found: rtmp ? `${nginx} (${rtmp})` : undefined,
      install: nginx
        ? 'sudo apt-get install -y libnginx-mod-rtmp'
        : 'sudo apt-get install -y nginx libnginx-mod-rtmp',
      ...(rtmp
        ? so
          ? { binaries: { nginx, module: so } }
          : { missing: `cannot tell where ngx_rtmp_module.so is from ${rtmp}` }
        : {}),
    },
  ];
}

type Pieces = Pick<SystemBackend, 'binaries' | 'missing'>;

/** initdb, pg_ctl and psql next to the postgres binary (psql may also be on PATH). */
function postgresPieces(fs: ProbeFs, pathVar: string, postgres: string | undefined, usr: string[]): Pieces {
  if (!postgres) return { missing: 'no postgres server binary (only pg_ctlcluster)' };
  const binDir = dirname(postgres);
  const absent = ['initdb', 'pg_ctl'].filter((t) => !fs.exists(join(binDir, t)));
  const psql = fs.exists(join(binDir, 'psql'))
    ? join(binDir, 'psql')
    : findBinary(fs, pathVar, ['psql'], usr);
  if (!psql) absent.push('psql');
  if (absent.length) return { missing: `${absent.join(', ')} not found next to ${postgres}` };
  return { binaries: { binDir, psql: psql! } };
}

/** mariadb-install-db and the client. */
function mariadbPieces(fs: ProbeFs, pathVar: string, mariadbd: string | undefined, usr: string[]): Pieces {
  if (!mariadbd) return {};
  const installDb = findBinary(fs, pathVar, ['mariadb-install-db', 'mysql_install_db'], usr);
  const client = findBinary(fs, pathVar, ['mariadb', 'mysql'], usr);
  if (!installDb || !client)
    return {
      missing: `${[installDb ? '' : 'mariadb-install-db', client ? '' : 'the mariadb client'].filter(Boolean).join(' and ')} not found`,
    };
  return { binaries: { mariadbd, installDb, client } };
}
