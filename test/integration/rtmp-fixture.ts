/**
 * Real RTMP software for the relay tests: nginx with the RTMP module (Debian
 * libnginx-mod-rtmp) as an origin in a temp dir on a free port, ffmpeg publishing a generated
 * stream (lavfi testsrc + sine), ffprobe reading one back, and a raw RTMP client that does the
 * handshake. Every process and wait is bounded; `closeAll()` stops what was started.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, waitFor } from './dblb-fixture.js';
import { nginxRtmpConfig } from '../../services/demo/nginx-rtmp-local.js';

export const RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

export const rtmpTools = {
  nginx: existsSync('/usr/sbin/nginx') && existsSync(RTMP_MODULE),
  ffmpeg: existsSync('/usr/bin/ffmpeg') && existsSync('/usr/bin/ffprobe'),
};

export interface Origin {
  port: number;
  address: string;
}

export interface Publish {
  child: ChildProcess;
  /** Resolves with the exit code and the last of stderr when ffmpeg ends (killed after its budget). */
  done: Promise<{ code: number | null; stderr: string }>;
}

export function createRtmpHarness() {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];

  const track = (c: ChildProcess) => {
    children.push(c);
    return c;
  };

  return {
    /** nginx-rtmp with `live on` applications (default: live, vod). */
    async startOrigin(apps: string[] = ['live', 'vod']): Promise<Origin> {
      const dir = mkdtempSync(join(tmpdir(), 'mp-rtmp-'));
      dirs.push(dir);
      const port = await freePort();
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, nginxRtmpConfig(RTMP_MODULE, dir, port, apps));
      // -e: nginx opens its default error log before it reads the config otherwise.
      track(
        spawn('/usr/sbin/nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], { stdio: 'ignore' }),
      );
      await waitFor('nginx-rtmp to listen', () => canConnect(port), 10_000);
      return { port, address: `127.0.0.1:${port}` };
    },

    /** ffmpeg publishing `seconds` of a generated 320x240 H.264 + AAC stream in real time. */
    publish(url: string, seconds: number): Publish {
      const child = track(
        spawn(
          'ffmpeg',
          [
            '-hide_banner',
            '-nostdin',
            '-loglevel',
            'warning',
            '-re',
            '-f',
            'lavfi',
            '-i',
            'testsrc=size=320x240:rate=25',
            '-f',
            'lavfi',
            '-i',
            'sine=frequency=440:sample_rate=44100',
            '-t',
            String(seconds),
            '-c:v',
            'libx264',
            '-preset',
            'ultrafast',
            '-tune',
            'zerolatency',
            '-g',
            '25',
            '-c:a',
            'aac',
            '-f',
            'flv',
            url,
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        ),
      );
      let stderr = '';
      child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
      const done = new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), (seconds + 20) * 1000);
        child.once('exit', (code) => {
          clearTimeout(t);
          resolve({ code, stderr });
        });
      });
      return { child, done };
    },

    /** ffprobe's streams (codec type, codec, width) for `url`, or its error. */
    probe(
      url: string,
      timeoutMs = 15_000,
    ): Promise<{ streams: Array<Record<string, unknown>>; error?: string }> {
      return new Promise((resolve) => {
        execFile(
          'ffprobe',
          [
            '-v',
            'error',
            '-rw_timeout',
            '8000000',
            '-show_entries',
            'stream=codec_type,codec_name,width',
            '-of',
            'json',
            url,
          ],
          { timeout: timeoutMs },
          (e, stdout, stderr) => {
            if (e) return resolve({ streams: [], error: `${e.message} ${stderr}` });
            try {
              resolve({
                streams: (JSON.parse(stdout) as { streams: Array<Record<string, unknown>> }).streams ?? [],
              });
            } catch {
              resolve({ streams: [], error: `unparsable ffprobe output ${stdout}` });
            }
          },
        );
      });
    },

    /** ffmpeg reading `seconds` of `url` and counting decoded video frames. */
    read(url: string, seconds: number): Promise<{ frames: number; stderr: string }> {
      return new Promise((resolve) => {
        execFile(
          'ffmpeg',
          [
            '-hide_banner',
            '-nostdin',
            '-rw_timeout',
            '8000000',
            '-i',
            url,
            '-t',
            String(seconds),
            '-map',
            '0:v',
            '-f',
            'null',
            '-',
          ],
          { timeout: (seconds + 20) * 1000 },
          (_e, _stdout, stderr) => {
            const m = [...stderr.matchAll(/frame=\s*(\d+)/g)].pop();
            resolve({ frames: m ? Number(m[1]) : 0, stderr: stderr.slice(-2000) });
          },
        );
      });
    },

    async closeAll(): Promise<void> {
      await Promise.all(
        children.splice(0).map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              const t = setTimeout(() => c.kill('SIGKILL'), 3_000);
              c.once('exit', () => {
                clearTimeout(t);
                resolve();
              });
              c.kill('SIGTERM');
            }),
        ),
      );
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** A raw TCP client: write bytes, collect what comes back, see when the server closes (bounded). */
export function rawConnect(port: number): Promise<{
  socket: Socket;
  received(): Buffer;
  write(b: Buffer): void;
  until(n: number, timeoutMs?: number): Promise<Buffer>;
  closed(timeoutMs?: number): Promise<number>;
}> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let closedAt = 0;
    const waiters = new Set<() => void>();
    socket.on('data', (b: Buffer) => {
      chunks.push(b);
      waiters.forEach((w) => w());
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closedAt ||= Date.now();
      waiters.forEach((w) => w());
    });
    const received = () => Buffer.concat(chunks);
    const wait = <T>(what: string, probe: () => T | undefined, timeoutMs: number) =>
      new Promise<T>((res, rej) => {
        const check = () => {
          const v = probe();
          if (v === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          res(v);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    socket.once('error', reject);
    socket.once('connect', () =>
      resolve({
        socket,
        received,
        write: (b) => void socket.write(b),
        until: (n, timeoutMs = 3_000) =>
          wait(
            `${n} bytes`,
            () => (received().length >= n ? received() : closedAt ? received() : undefined),
            timeoutMs,
          ),
        closed: (timeoutMs = 3_000) =>
          wait('the server to close', () => (closedAt ? closedAt - t0 : undefined), timeoutMs),
      }),
    );
  });
}
