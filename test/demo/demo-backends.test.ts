import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactLine } from '../../cli/compact-log.js';
import { configureDemoModules, startDemoBackends, type DemoBackends } from '../../cli/dev-demo.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEchoHttp } from '../../services/demo/echo-http.js';
import { detectSystemBackends, type ProbeFs } from '../../services/demo/system-backends.js';
import { startModuleStack, type ModuleStack } from '../cli/support/module-stack.js';

describe('echo HTTP demo', () => {
  it('answers with its version, the method, path, query, headers and body size', async () => {
    const echo = await startEchoHttp({ version: 'v2' });
    try {
      const res = await fetch(`http://${echo.address}/shop/cart?id=7`, {
        method: 'POST',
        headers: { 'x-trace': 'abc' },
        body: 'hello',
      });
      expect(res.headers.get('x-echo-version')).toBe('v2');
      expect(await res.json()).toMatchObject({
        service: 'echo',
        version: 'v2',
        method: 'POST',
        path: '/shop/cart',
        query: { id: '7' },
        headers: { 'x-trace': 'abc', host: echo.address },
        bodyBytes: 5,
      });
    } finally {
      await echo.close();
    }
  });
});

describe('third-party backend detection', () => {
  const fakeFs = (files: string[], dirs: Record<string, string[]> = {}): ProbeFs => ({
    exists: (p) => files.includes(p),
    list: (d) => dirs[d] ?? [],
  });

  it('finds versioned PostgreSQL, MariaDB in sbin and nginx only with its RTMP module', () => {
    const found = detectSystemBackends(
      '/usr/bin',
      fakeFs(
        [
          '/usr/lib/postgresql/16/bin/postgres',
          '/usr/sbin/mariadbd',
          '/usr/sbin/nginx',
          '/usr/lib/nginx/modules/ngx_rtmp_module.so',
        ],
        { '/usr/lib/postgresql': ['15', '16'] },
      ),
    );
    expect(found.map((b) => [b.name, b.found])).toEqual([
      ['PostgreSQL', '/usr/lib/postgresql/16/bin/postgres'],
      ['MariaDB', '/usr/sbin/mariadbd'],
      ['nginx-rtmp', '/usr/sbin/nginx (/usr/lib/nginx/modules/ngx_rtmp_module.so)'],
    ]);
  });

  it('names the binaries mpctl dev runs each with, or what is missing to run a private copy', () => {
    const [pg, maria, rtmp] = detectSystemBackends(
      '/usr/bin',
      fakeFs(
        [
          '/usr/lib/postgresql/15/bin/postgres',
          '/usr/lib/postgresql/15/bin/pg_ctl',
          '/usr/bin/psql',
          '/usr/sbin/mariadbd',
          '/usr/bin/mariadb-install-db',
          '/usr/bin/mariadb',
          '/usr/sbin/nginx',
          '/usr/lib/nginx/modules/ngx_rtmp_module.so',
        ],
        { '/usr/lib/postgresql': ['15'] },
      ),
    );
    expect(pg.binaries).toBeUndefined();
    expect(pg.missing).toBe('initdb not found next to /usr/lib/postgresql/15/bin/postgres');
    expect(maria.binaries).toEqual({
      mariadbd: '/usr/sbin/mariadbd',
      installDb: '/usr/bin/mariadb-install-db',
      client: '/usr/bin/mariadb',
    });
    expect(rtmp.binaries).toEqual({
      nginx: '/usr/sbin/nginx',
      module: '/usr/lib/nginx/modules/ngx_rtmp_module.so',
    });
  });

  it('says how to add what is missing', () => {
    const found = detectSystemBackends('/usr/bin', fakeFs(['/usr/sbin/nginx']));
    expect(found.map((b) => [b.name, b.found, b.install])).toEqual([
      ['PostgreSQL', undefined, 'sudo apt-get install -y postgresql'],
      ['MariaDB', undefined, 'sudo apt-get install -y mariadb-server'],
      ['nginx-rtmp', undefined, 'sudo apt-get install -y libnginx-mod-rtmp'],
    ]);
  });
});

describe('mpctl dev demo backends', () => {
  let stack: ModuleStack;
  let demo: DemoBackends;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'mpctl-demo-test-'));
    stack = await startModuleStack();
    demo = await startDemoBackends({ portBase: 0, dataDir });
  });
  afterAll(async () => {
    await demo?.stop();
    await stack?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('become the ALB and AILB backends, and the ALB v2.0 config names echo v2', async () => {
    const alb = await stack.startModule('alb', '1.0');
    const ailb = await stack.startModule('ailb', '1.0');
    const problems = await configureDemoModules(demo, [
      { type: 'alb', handle: alb },
      { type: 'ailb', handle: ailb },
    ]);
    expect(problems).toEqual([]);
    expect(alb.controller.config).toMatchObject({
      backends: [{ name: 'echo-v1', address: demo.echoV1.address, weight: 1 }],
    });
    expect(ailb.controller.config).toMatchObject({
      backends: [{ name: 'openai-demo', address: demo.openai.address, models: ['demo-chat', 'demo-embed'] }],
    });
    expect(JSON.parse(readFileSync(demo.albV2ConfigFile, 'utf8'))).toEqual({
      backends: [{ name: 'echo-v2', address: demo.echoV2.address, weight: 1 }],
    });
    const out = await stack.run(['module', 'config', 'get', '--module', 'ailb', '--json']);
    expect(out.stdout).toContain(demo.openai.address);
    const models = (await fetch(`http://${demo.openai.address}/v1/models`).then((r) => r.json())) as {
      data: unknown[];
    };
    expect(models.data).toHaveLength(2);
  });
});

describe('compact log', () => {
  it('turns pino lines into one short line and passes other text through', () => {
    const time = Date.UTC(2026, 0, 2, 3, 4, 5);
    expect(
      compactLine(
        JSON.stringify({
          level: 40,
          time,
          pid: 1,
          hostname: 'h',
          name: 'dev',
          service: 'alb',
          module: 'ALB',
          version: '1.0',
          desired: 1,
          msg: 'instance ended',
        }),
      ),
    ).toBe('03:04:05 WARN  alb 1.0   instance ended  desired=1');
    expect(
      compactLine(JSON.stringify({ level: 30, time, service: 'nlb', version: '2.0', msg: 'registered' })),
    ).toBe('03:04:05 INFO  nlb       registered  version=2.0');
    expect(compactLine('plain text')).toBe('plain text');
  });
});
