/**
 * The ALB with real third-party clients: a WebSocket upgrade (undici's WebSocket), the client
 * address from a PROXY v2 header (an instance started by a real controller with a real NLB),
 * TLS termination from certificate files (undici over https), and a short bounded `wrk` run.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Agent, request, WebSocket } from 'undici';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { encodeProxyV2 } from '../../services/nlb/dataplane/proxy-protocol.js';
import { createHttpHarness, readUntil, waitFor } from './alb-fixture.js';
import { createModuleHarness } from './module-fixture.js';

const h = createHttpHarness();
const m = createModuleHarness();
const agent = new Agent({ keepAliveTimeout: 1000, connect: { rejectUnauthorized: false } });
afterEach(async () => {
  await h.closeAll();
  await m.closeAll();
});

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

describe('ALB with real clients', () => {
  it('passes a WebSocket upgrade through, both ways', async () => {
    const b = await h.backend('ws-backend');
    const alb = await h.instance(albPlugin, { backends: [{ name: 'b', address: b.address }] });
    const ws = new WebSocket(`ws://${alb.address}/chat`);
    const messages: string[] = [];
    ws.addEventListener('message', (e) => messages.push(String(e.data)));
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('websocket failed')));
      setTimeout(() => reject(new Error('no open within 3 s')), 3000);
    });
    ws.send('hello');
    ws.send('again');
    await waitFor('two echoes', () => messages.length === 2, 3000);
    expect(messages).toEqual(['ws-backend: hello', 'ws-backend: again']);
    const closed = new Promise<void>((r) => ws.addEventListener('close', () => r()));
    ws.close();
    await closed;
    const hs = b.seen.find((r) => r.url === '/chat');
    expect(hs?.headers.upgrade).toBe('websocket');
    expect(hs?.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(alb.counter('websocket_upgrades')).toBe(1);
  });

  it('takes the client address from a PROXY v2 header (real controller and NLB)', async () => {
    const b = await h.backend('b');
    const nlb = await m.startNlb();
    const mod = await m.startModule({ nlb: nlb.target, type: 'alb' });
    const config = { backends: [{ name: 'b', address: b.address }] };
    const u = await mod.rpc('updateConfig', {
      config: { configType: 'module', configData: Buffer.from(JSON.stringify(config)) },
    });
    expect(u.success).toBe(true);
    // A limit for one client address only: the address must come from the header.
    await mod.rpc('setRateLimit', {
      limit: { limitId: 'one-client', target: '198.51.100.7', requestsPerMinute: 1, enabled: true },
    });
    const inst = (await mod.rpc('getInstances', {})).instances[0];
    const port = Number(inst.trafficAddress.split(':').pop());
    const send = async (src: string) => {
      const s = await h.raw(port);
      s.write(
        Buffer.concat([
          encodeProxyV2({ srcAddress: src, srcPort: 40000, dstAddress: '192.0.2.1', dstPort: 80 }),
          Buffer.from('GET /who HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n'),
        ]),
      );
      return (await readUntil(s, () => false, 3000)).text;
    };
    expect(await send('198.51.100.7')).toMatch(/^HTTP\/1\.1 200 /);
    expect(b.seen.at(-1)?.headers['x-forwarded-for']).toBe('198.51.100.7');
    expect(await send('198.51.100.7')).toMatch(/^HTTP\/1\.1 429 /);
    expect(await send('2001:db8::5')).toMatch(/^HTTP\/1\.1 200 /);
    expect(b.seen.at(-1)?.headers['x-forwarded-for']).toBe('2001:db8::5');
    // Without a header the peer's own address is used.
    const plain = await request(`http://${inst.trafficAddress}/`, { dispatcher: agent });
    expect(plain.statusCode).toBe(200);
    await plain.body.text();
    expect(b.seen.at(-1)?.headers['x-forwarded-for']).toBe('127.0.0.1');
    // The instance says its data plane is real.
    const listed = await nlb.rpc('listModules', {});
    expect(listed.modules[0].metadata.data_plane).toBe('real');
  });

  it.skipIf(!has('openssl'))('terminates TLS with a certificate and key from files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mp-alb-tls-'));
    try {
      const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
        ],
        { stdio: 'ignore' },
      );
      const b = await h.backend('b');
      const alb = await h.instance(albPlugin, {
        backends: [{ name: 'b', address: b.address }],
        tls: { certFile: cert, keyFile: key },
      });
      const r = await request(`https://${alb.address}/secure`, { dispatcher: agent });
      expect(r.statusCode).toBe(200);
      const seen = ((await r.body.json()) as { headers: Record<string, string> }).headers;
      expect(seen['x-forwarded-proto']).toBe('https');
      // Plain HTTP on the same port still works.
      const plain = await request(`http://${alb.address}/plain`, { dispatcher: agent });
      expect(
        ((await plain.body.json()) as { headers: Record<string, string> }).headers['x-forwarded-proto'],
      ).toBe('http');
      // A broken handshake is counted and closed, the instance keeps serving.
      const s = await h.raw(alb.port);
      s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]));
      expect((await readUntil(s, () => false, 3000)).closed).toBe(true);
      expect(alb.counter('tls_errors')).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!has('wrk'))('serves a short wrk run without errors', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, { backends: [{ name: 'b', address: b.address }] });
    // Asynchronously: the instance runs in this process and must keep serving meanwhile.
    const { stdout: out } = await promisify(execFile)(
      'wrk',
      ['-t1', '-c8', '-d1s', '--timeout', '2s', `${alb.url}/`],
      {
        encoding: 'utf8',
        timeout: 15_000,
      },
    );
    const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    expect(total).toBeGreaterThan(100);
    expect(out).not.toMatch(/Non-2xx|Socket errors/);
    const s = alb.runtime.statsSnapshot();
    expect(s.totalRequests).toBeGreaterThanOrEqual(total);
    expect(s.failedRequests).toBe(0);
    // Keep-alive towards the backend: far fewer connections than requests.
    expect(b.connections()).toBeLessThanOrEqual(8);
  });
});

afterAll(() => agent.close());
