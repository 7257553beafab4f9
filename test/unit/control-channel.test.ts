/**
 * The instance control channel (providers/control-channel.ts) on a real unix socket: a
 * controller must name the instance and present its secret before anything is answered; the
 * socket and its directory are private; events reach attached controllers; attachment counts
 * follow connections (what the orphan timer watches).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { ChildIdentity } from '../../services/modules/runtime/providers/child-protocol.js';
import {
  ControlClient,
  controlSocketPath,
  serveControl,
  type ControlServer,
} from '../../services/modules/runtime/providers/control-channel.js';

const dirs: string[] = [];
const servers: ControlServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const identity: ChildIdentity = {
  instanceId: 'alb-1.0-1-abcd',
  moduleType: 'ALB',
  version: '1.0',
  pid: 4242,
  trafficAddress: '127.0.0.1:9999',
  startedAtMs: 1,
  status: 'HEALTHY',
  controllerAddress: '127.0.0.1:50051',
  nlbTarget: '127.0.0.1:50050',
};

async function serve() {
  const dataDir = mkdtempSync(join(tmpdir(), 'mp-ctl-unit-'));
  dirs.push(dataDir);
  const socketPath = controlSocketPath(dataDir, identity.instanceId);
  const attached: number[] = [];
  const problems: string[] = [];
  const server = await serveControl({
    socketPath,
    secret: 's3cret-s3cret-s3cret',
    instanceId: identity.instanceId,
    identity: () => identity,
    handle: (m) =>
      Promise.resolve(m.type === 'status' ? { status: 'HEALTHY', lease: 'registered', heartbeats: 3 } : null),
    afterStop: () => undefined,
    onAttached: (n) => attached.push(n),
    onProblem: (why) => problems.push(why),
  });
  servers.push(server);
  return { socketPath, server, attached, problems };
}

/** Sends raw lines and collects the first answer line (or '' when the socket closes first). */
function raw(socketPath: string, lines: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(socketPath, () => s.write(lines));
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\n')) {
        s.destroy();
        resolve(buf.split('\n')[0]);
      }
    });
    s.on('close', () => resolve(buf));
    s.on('error', () => resolve(buf));
  });
}

it('answers nothing before a hello with the right instance id and secret', async () => {
  const { socketPath, attached, problems } = await serve();
  expect(await raw(socketPath, `${JSON.stringify({ type: 'status', reqId: 1 })}\n`)).toContain(
    'send hello first',
  );
  const wrong = { type: 'hello', reqId: 1, instanceId: identity.instanceId, secret: 'guess' };
  expect(await raw(socketPath, `${JSON.stringify(wrong)}\n`)).toContain('wrong secret');
  await expect(
    ControlClient.attach(socketPath, { instanceId: 'alb-1.0-2-ffff', secret: 's3cret-s3cret-s3cret' }),
  ).rejects.toThrow(/not this instance, or a wrong secret/);
  expect(await raw(socketPath, 'not json\n')).toBe('');
  expect(attached).toEqual([]);
  expect(problems.join('\n')).toMatch(/wrong instance id or secret[\s\S]*not JSON/);
});

it('a controller with the secret attaches, gets the identity, requests, events; detaching is counted', async () => {
  const { socketPath, server, attached } = await serve();
  expect(statSync(socketPath).mode & 0o777).toBe(0o600);
  expect(statSync(dirname(socketPath)).mode & 0o777).toBe(0o700);
  const { client, identity: got } = await ControlClient.attach(socketPath, {
    instanceId: identity.instanceId,
    secret: 's3cret-s3cret-s3cret',
  });
  expect(got).toEqual(identity);
  expect(await client.request({ type: 'status' })).toEqual({
    status: 'HEALTHY',
    lease: 'registered',
    heartbeats: 3,
  });
  const events: string[] = [];
  client.onEvent((e) => events.push(e.type));
  server.broadcast({ type: 'reload-requested' });
  await expect.poll(() => events, { timeout: 2000 }).toEqual(['reload-requested']);
  const closed = new Promise<void>((r) => client.onClose(r));
  client.close();
  await closed;
  await expect.poll(() => attached, { timeout: 2000 }).toEqual([1, 0]);
  await expect(client.request({ type: 'status' })).rejects.toThrow(/not running/);
});

it('keeps socket paths short enough for a unix socket however deep the data dir is', () => {
  const deep = join(tmpdir(), 'mp-ctl-unit-deep', 'x'.repeat(120));
  dirs.push(join(tmpdir(), 'mp-ctl-unit-deep'));
  const p = controlSocketPath(deep, 'alb-1.0-1-abcd');
  dirs.push(dirname(p));
  expect(Buffer.byteLength(p)).toBeLessThanOrEqual(100);
  expect(controlSocketPath(deep, 'alb-1.0-1-abcd')).toBe(p);
  expect(controlSocketPath(deep, 'alb-1.0-2-abcd')).not.toBe(p);
});
