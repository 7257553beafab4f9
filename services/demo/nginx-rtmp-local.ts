/**
 * nginx with the RTMP module as the local stack's RTMP origin: a config in its own directory
 * under the stack's data directory, one `live` application (and `vod`, also live) on
 * 127.0.0.1, no HTTP. nginx runs in the foreground (daemon off, one process) as a child of
 * this process.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { canConnect, freePort, logTail, stopChild, stopLeftover, waitUntil } from './local-process.js';

export interface NginxRtmpBinaries {
  nginx: string;
  /** ngx_rtmp_module.so */
  module: string;
}

/** The running origin. */
export interface LocalRtmpOrigin {
  name: string;
  address: string;
  port: number;
  /** Applications it serves (RTMP URL path: rtmp://host:port/<app>/<stream>). */
  apps: string[];
  dir: string;
  stop(): Promise<void>;
}

const APPS = ['live', 'vod'];

/** The nginx.conf of an RTMP origin with `live on` applications (pure; also the tests' origin). */
export function nginxRtmpConfig(
  module: string,
  dir: string,
  port: number,
  apps: readonly string[] = APPS,
): string {
  return [
    '# Written by mpctl on every start.',
    `load_module ${module};`,
    'daemon off;',
    'master_process off;',
    'worker_processes 1;',
    `error_log ${join(dir, 'error.log')} warn;`,
    `pid ${join(dir, 'nginx.pid')};`,
    'events { worker_connections 256; }',
    'rtmp {',
    '  server {',
    `    listen 127.0.0.1:${port};`,
    '    chunk_size 4096;',
    ...apps.map((a) => `    application ${a} { live on; record off; }`),
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Starts nginx-rtmp in `<dataDir>/nginx-rtmp` on `port` (0: a free one). */
export async function startLocalNginxRtmp(
  bins: NginxRtmpBinaries,
  dataDir: string,
  port: number,
): Promise<LocalRtmpOrigin> {
  const dir = resolve(dataDir, 'nginx-rtmp');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const left = await stopLeftover(join(dir, 'nginx.pid'), dir);
  if (left) process.stderr.write(`stopped nginx pid ${left} left running by an earlier mpctl dev\n`);
  const chosen = port || (await freePort());
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxRtmpConfig(bins.module, dir, chosen));
  // -e: the error log before the config is read (else nginx tries /var/log/nginx).
  const child = spawn(bins.nginx, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], { stdio: 'ignore' });
  let exited: string | undefined;
  child.once(
    'exit',
    (code, signal) =>
      (exited = `nginx exited (${signal ?? `code ${code}`}): ${logTail(join(dir, 'error.log'))}`),
  );
  child.once('error', (e) => (exited = `nginx could not run: ${e.message}`));
  const stop = () => stopChild(child, 10_000);
  try {
    await waitUntil(
      'nginx-rtmp',
      () => canConnect(chosen),
      20_000,
      () => exited,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { name: 'nginx-rtmp', address: `127.0.0.1:${chosen}`, port: chosen, apps: APPS, dir, stop };
}
