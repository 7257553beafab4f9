/**
 * The third-party backends of `mpctl dev`: a private PostgreSQL and MariaDB (for the DBLB) and
 * nginx-rtmp (for the RTMP module), each started when installed, in its own directory under the
 * stack's data directory, on 127.0.0.1. What is not installed, or does not start, is reported
 * with what to do, and the stack goes on without it.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { startLocalMariadb } from '../services/demo/mariadb-local.js';
import { startLocalNginxRtmp, type LocalRtmpOrigin } from '../services/demo/nginx-rtmp-local.js';
import { startLocalPostgres, type LocalDatabase } from '../services/demo/postgres-local.js';
import { detectSystemBackends, type SystemBackend } from '../services/demo/system-backends.js';
import type { ModuleHandle } from '../services/modules/runtime/main.js';
import type { ProtocolName, RouteSpec } from '../services/nlb/domain/types.js';

/** What runs, and one line per backend for the banner. */
export interface SystemBackends {
  postgres?: LocalDatabase;
  mariadb?: LocalDatabase;
  rtmp?: LocalRtmpOrigin;
  detected: SystemBackend[];
  /** Per backend: "running at …", "missing …", "not started: …". */
  lines: string[];
  stop(): Promise<void>;
}

export interface SystemOptions {
  /** The stack's data directory; each server gets a directory in it. */
  dataDir: string;
  pathVar: string;
  /** Ports of PostgreSQL, MariaDB and nginx-rtmp (0: free ports). */
  ports: { postgres: number; mariadb: number; rtmp: number };
}

const pad = (s: string) => s.padEnd(12);

/** A path as the banner shows it: relative when under the current directory, else absolute. */
export function displayPath(p: string): string {
  const r = relative(process.cwd(), resolve(p));
  return r === '' ? '.' : r.startsWith('..') || isAbsolute(r) ? resolve(p) : r;
}

/** The banner line of one backend: where it runs, or why not and what to do. */
function line<T extends { address: string }>(
  b: SystemBackend,
  result: PromiseSettledResult<T | undefined>,
  describe: (server: T) => string,
): string {
  if (result.status === 'fulfilled' && result.value)
    return `  ${pad(b.name)}  ${result.value.address}   (${describe(result.value)})`;
  if (!b.found) return `  ${pad(b.name)}  missing (for the ${b.module}); add it with: ${b.install}`;
  if (b.missing) return `  ${pad(b.name)}  found ${b.found} but not started: ${b.missing}`;
  const why = result.status === 'rejected' ? (result.reason as Error).message : 'unknown reason';
  return `  ${pad(b.name)}  not started (the ${b.module} runs without it): ${why}`;
}

/** Starts the installed ones, in parallel (initdb and mariadb-install-db take seconds). */
export async function startSystemBackends(options: SystemOptions): Promise<SystemBackends> {
  const detected = detectSystemBackends(options.pathVar);
  const [pgInfo, mariaInfo, rtmpInfo] = detected;
  const attempt = <T>(b: SystemBackend, start: (bins: Record<string, string>) => Promise<T>) =>
    b.binaries ? start(b.binaries) : Promise.resolve(undefined);
  const [pg, maria, rtmp] = await Promise.allSettled([
    attempt(pgInfo, (bins) =>
      startLocalPostgres({ binDir: bins.binDir, psql: bins.psql }, options.dataDir, options.ports.postgres),
    ),
    attempt(mariaInfo, (bins) =>
      startLocalMariadb(
        { mariadbd: bins.mariadbd, installDb: bins.installDb, client: bins.client },
        options.dataDir,
        options.ports.mariadb,
      ),
    ),
    attempt(rtmpInfo, (bins) =>
      startLocalNginxRtmp({ nginx: bins.nginx, module: bins.module }, options.dataDir, options.ports.rtmp),
    ),
  ]);
  const value = <T>(r: PromiseSettledResult<T | undefined>) =>
    r.status === 'fulfilled' ? r.value : undefined;
  const started = { postgres: value(pg), mariadb: value(maria), rtmp: value(rtmp) };
  const rel = displayPath;
  const lines = [
    line(pgInfo, pg, (db) => `DBLB backend; database ${db.database}, user ${db.user}; data ${rel(db.dir)}`),
    line(
      mariaInfo,
      maria,
      (db) => `DBLB backend; database ${db.database}, user ${db.user}; data ${rel(db.dir)}`,
    ),
    line(rtmpInfo, rtmp, (o) => `RTMP origin; apps ${o.apps.join(', ')}; data ${rel(o.dir)}`),
  ];
  return {
    ...started,
    detected,
    lines,
    stop: async () => {
      const running = [started.postgres, started.mariadb, started.rtmp].filter((s) => s !== undefined);
      await Promise.all(running.map((s) => s.stop().catch(() => undefined)));
    },
  };
}

/** The DBLB config for the demo databases; the MySQL listener's port routes to MariaDB at once. */
export function dblbConfig(system: Pick<SystemBackends, 'postgres' | 'mariadb'>, mysqlListenerPort?: number) {
  const { postgres: pg, mariadb: maria } = system;
  const credentials = (db: LocalDatabase) => ({
    user: db.user,
    password: db.password,
    database: db.database,
  });
  return {
    backends: [
      ...(pg ? [{ name: 'postgres-demo', protocol: 'postgres', address: pg.address }] : []),
      ...(maria ? [{ name: 'mariadb-demo', protocol: 'mysql', address: maria.address }] : []),
    ],
    routes: [
      ...(pg ? [{ name: 'postgres', protocol: 'postgres', backends: ['postgres-demo'] }] : []),
      ...(maria && mysqlListenerPort
        ? [
            {
              name: 'mysql-listener',
              protocol: 'mysql',
              ports: [mysqlListenerPort],
              backends: ['mariadb-demo'],
            },
          ]
        : []),
      ...(maria ? [{ name: 'mysql', protocol: 'mysql', backends: ['mariadb-demo'] }] : []),
    ],
    healthCheck: {
      ...(pg ? { postgres: credentials(pg) } : {}),
      ...(maria ? { mysql: credentials(maria) } : {}),
    },
  };
}

/** A route that sends every connection of `protocol` to a module ("dev-<protocol>"). */
export function catchAllRoute(protocol: ProtocolName): RouteSpec {
  return {
    routeId: `dev-${protocol.toLowerCase()}`,
    protocol,
    sourcePattern: '',
    destinationPattern: '',
    sourcePort: 0,
    destinationPort: 0,
    headers: {},
    pathPattern: '',
    priority: 0,
    metadata: { owner: 'mpctl dev' },
  };
}

/**
 * Gives a controller catch-all routes for `protocols` (added or replaced by id, other routes
 * kept), so that the NLB's listeners send those connections to it. Returns failures.
 */
export async function routeProtocols(handle: ModuleHandle, protocols: ProtocolName[]): Promise<string[]> {
  if (!protocols.length) return [];
  try {
    return (await handle.controller.updateRoutes(protocols.map(catchAllRoute), false)).failures;
  } catch (e) {
    return [(e as Error).message];
  }
}

/** The RTMP config for the nginx-rtmp origin. */
export function rtmpConfig(origin: LocalRtmpOrigin) {
  return { origins: [{ name: 'nginx-rtmp', address: origin.address }] };
}

/**
 * Points the DBLB at the demo databases and the RTMP module at nginx-rtmp (only those that
 * run), keeping the rest of their stored config. Returns what went wrong (empty when all is well).
 */
export async function configureSystemModules(
  system: SystemBackends,
  modules: ReadonlyArray<{ type: string; handle: ModuleHandle }>,
  listeners: ReadonlyArray<{ name: string; port: number }>,
): Promise<string[]> {
  const mysqlPort = listeners.find((l) => l.name === 'mysql')?.port;
  const wanted: Record<string, object | undefined> = {
    dblb: system.postgres || system.mariadb ? dblbConfig(system, mysqlPort) : undefined,
    rtmp: system.rtmp ? rtmpConfig(system.rtmp) : undefined,
  };
  const routed: Record<string, ProtocolName[]> = {
    dblb: [...(system.postgres ? ['POSTGRES' as const] : []), ...(system.mariadb ? ['MYSQL' as const] : [])],
    rtmp: system.rtmp ? ['RTMP'] : [],
  };
  const problems: string[] = [];
  for (const { type, handle } of modules) {
    const patch = wanted[type];
    if (!patch) continue;
    const routeFailures = await routeProtocols(handle, routed[type] ?? []);
    if (routeFailures.length) problems.push(`${type.toUpperCase()} routes: ${routeFailures.join('; ')}`);
    const current = handle.controller.config;
    const merged = { ...(typeof current === 'object' && current !== null ? current : {}), ...patch };
    const checked = handle.controller.validateConfig(merged);
    if (!checked.ok) {
      problems.push(`${type.toUpperCase()}: third-party backends not set: ${checked.problems.join('; ')}`);
      continue;
    }
    const failures = await handle.controller.updateConfig(checked.config);
    if (failures.length) problems.push(`${type.toUpperCase()}: ${failures.join('; ')}`);
  }
  return problems;
}

/** Commands to try against what runs, through the NLB's listeners. */
export function systemTryLines(
  system: SystemBackends,
  listeners: ReadonlyArray<{ name: string; port: number }>,
): string[] {
  const port = (name: string) => listeners.find((l) => l.name === name)?.port;
  const rel = displayPath;
  const lines: string[] = [];
  const pg = system.postgres;
  if (pg && port('postgres'))
    lines.push(
      `  PGPASSWORD=$(cat ${rel(`${pg.dir}/demo-password`)}) psql -h 127.0.0.1 -p ${port('postgres')} -U ${pg.user} ${pg.database} -c 'select version()'`,
    );
  const maria = system.mariadb;
  if (maria && port('mysql'))
    lines.push(
      `  mariadb -h 127.0.0.1 -P ${port('mysql')} -u ${maria.user} -p"$(cat ${rel(`${maria.dir}/demo-password`)})" ${maria.database} -e 'select version()'`,
    );
  if (system.rtmp && port('rtmp'))
    lines.push(
      `  ffmpeg -re -f lavfi -i testsrc=size=320x240:rate=25 -t 30 -c:v libx264 -f flv rtmp://127.0.0.1:${port('rtmp')}/live/demo`,
      `  ffprobe rtmp://127.0.0.1:${port('rtmp')}/live/demo      # while ffmpeg publishes`,
    );
  return lines;
}
