/**
 * Which third-party servers the local stack could use as demo backends (PostgreSQL and
 * MariaDB for the DBLB, nginx with the RTMP module for RTMP), found by looking for their
 * binaries. `mpctl dev` does not start them: it says which are there, which are missing and the
 * Debian packages that add them. File checks are injected, so this is testable.
 */
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** A third-party backend and whether it is installed. */
export interface SystemBackend {
  name: string;
  /** The module type it backs. */
  module: 'DBLB' | 'RTMP';
  /** The binary found, if any. */
  found?: string;
  /** How to install it on Debian/Ubuntu. */
  install: string;
}

/** The file system as detection sees it. */
export interface ProbeFs {
  exists(path: string): boolean;
  /** Entries of a directory ([] when it is missing). */
  list(dir: string): string[];
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

const RTMP_MODULE_PATHS = [
  '/usr/lib/nginx/modules/ngx_rtmp_module.so',
  '/usr/share/nginx/modules-available/mod-rtmp.conf',
  '/etc/nginx/modules-enabled/50-mod-rtmp.conf',
];

/** The three backends with what was found of each. `pathVar` is the PATH to search. */
export function detectSystemBackends(pathVar: string, fs: ProbeFs = realFs): SystemBackend[] {
  const sbin = ['/usr/sbin', '/usr/local/sbin', '/sbin'];
  const postgres =
    findBinary(fs, pathVar, ['postgres'], postgresDirs(fs)) ??
    findBinary(fs, pathVar, ['pg_ctlcluster'], sbin);
  const mariadb = findBinary(fs, pathVar, ['mariadbd', 'mysqld'], sbin);
  const nginx = findBinary(fs, pathVar, ['nginx'], sbin);
  const rtmp = nginx && RTMP_MODULE_PATHS.find((p) => fs.exists(p));
  return [
    { name: 'PostgreSQL', module: 'DBLB', found: postgres, install: 'sudo apt-get install -y postgresql' },
    { name: 'MariaDB', module: 'DBLB', found: mariadb, install: 'sudo apt-get install -y mariadb-server' },
    {
      name: 'nginx-rtmp',
      module: 'RTMP',
      found: rtmp ? `${nginx} (${rtmp})` : undefined,
      install: nginx
        ? 'sudo apt-get install -y libnginx-mod-rtmp'
        : 'sudo apt-get install -y nginx libnginx-mod-rtmp',
    },
  ];
}
