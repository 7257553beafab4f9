/**
 * The NLB's xDS (ADS) export, checked with @grpc/grpc-js-xds as an independent client: a channel
 * to xds:///alb spreads ModuleService GetStatus calls over the healthy ALB controllers per the
 * deployment weights, follows a weight change, and drops an unhealthy instance. Loopback only.
 */
import * as grpc from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GetStatusResponse,
  ModuleServiceClient,
  ModuleServiceService,
  type GetStatusRequest,
} from '../../proto/gen/marchproxy/module.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import {
  buildSnapshot,
  startXdsServer,
  TYPE,
  xdsBootstrap,
  type XdsHandle,
} from '../../services/nlb/xds/server.js';
import { createLogger } from '../../services/shared/logger.js';
import { spec } from '../unit/nlb-fixtures.js';

/** A ModuleService controller that answers GetStatus with its version. */
async function fakeController(version: string) {
  const server = new grpc.Server();
  server.addService(ModuleServiceService, {
    getStatus: (
      _call: grpc.ServerUnaryCall<GetStatusRequest, GetStatusResponse>,
      cb: grpc.sendUnaryData<GetStatusResponse>,
    ) => cb(null, GetStatusResponse.fromPartial({ instance: { version }, message: version })),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((r) => server.tryShutdown(() => r())),
  };
}

let nlb: NlbHandle;
let xdsServer: XdsHandle;
let blue: Awaited<ReturnType<typeof fakeController>>;
let blue2: Awaited<ReturnType<typeof fakeController>>;
let green: Awaited<ReturnType<typeof fakeController>>;
let client: InstanceType<typeof ModuleServiceClient>;

beforeAll(async () => {
  xds.register();
  nlb = await startNlb(
    nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      dataDir: '',
      logLevel: 'silent',
    }),
  );
  [blue, blue2, green] = await Promise.all([
    fakeController('1.0'),
    fakeController('1.0'),
    fakeController('2.0'),
  ]);
  nlb.nlb.register(spec({ instanceId: 'alb-blue-1', version: '1.0', address: blue.address }), [], 'HEALTHY');
  nlb.nlb.register(spec({ instanceId: 'alb-blue-2', version: '1.0', address: blue2.address }), [], 'HEALTHY');
  nlb.nlb.register(
    spec({ instanceId: 'alb-green-1', version: '2.0', address: green.address }),
    [],
    'HEALTHY',
  );
  setWeight('2.0', 25);
  xdsServer = await startXdsServer({
    nlb: nlb.nlb,
    logger: createLogger({ level: 'silent', name: 'xds' }),
    host: '127.0.0.1',
    port: 0,
  });
  client = new ModuleServiceClient('xds:///alb', grpc.credentials.createInsecure(), {
    'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': xdsBootstrap(xdsServer.address, 'xds-test'),
  });
});

afterAll(async () => {
  client?.close();
  await xdsServer?.stop();
  await Promise.all([blue, blue2, green].filter(Boolean).map((c) => c.stop()));
  await nlb?.stop();
});

function setWeight(version: string, weight: number) {
  nlb.nlb.updateDeployment('ALB', 'SET_WEIGHT', {
    version,
    weight,
    promotionRate: 0,
    immediate: false,
    validateOnly: false,
    reason: 'test',
    requestedBy: 'test',
  });
}

function getStatus(): Promise<{ version: string; peer: string }> {
  return new Promise((resolve, reject) => {
    const call = client.getStatus(
      { instanceId: '' },
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err, res) => (err ? reject(err) : resolve({ version: res.message, peer: peerOf(call) })),
    );
  });
}
function peerOf(call: grpc.ClientUnaryCall): string {
  return call.getPeer();
}

/** n calls → counts per version and per peer address. */
async function spread(n: number) {
  const versions: Record<string, number> = {};
  const peers: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await getStatus();
    versions[r.version] = (versions[r.version] ?? 0) + 1;
    peers[r.peer] = (peers[r.peer] ?? 0) + 1;
  }
  return { versions, peers };
}

describe('xDS export', () => {
  it('publishes a listener, a weighted route and per-version EDS clusters of healthy controllers', () => {
    const snap = buildSnapshot(nlb.nlb);
    expect([...snap[TYPE.listener].keys()]).toEqual(['alb']);
    const route = snap[TYPE.route].get('alb-route') as {
      virtual_hosts: Array<{ routes: Array<{ route: unknown }> }>;
    };
    expect(route.virtual_hosts[0].routes[0].route).toEqual({
      weighted_clusters: {
        clusters: [
          { name: 'alb@1.0', weight: { value: 75 } },
          { name: 'alb@2.0', weight: { value: 25 } },
        ],
      },
    });
    expect([...snap[TYPE.endpoint].keys()].sort()).toEqual(['alb@1.0', 'alb@2.0']);
  });

  it('spreads xds:///alb calls over the healthy controllers per the weights', async () => {
    const { versions, peers } = await spread(200);
    expect(versions['1.0'] + versions['2.0']).toBe(200);
    // 25 % ± sampling noise.
    expect(versions['2.0']).toBeGreaterThan(25);
    expect(versions['2.0']).toBeLessThan(80);
    // Both blue controllers take calls (round robin within the cluster).
    expect(peers[blue.address]).toBeGreaterThan(20);
    expect(peers[blue2.address]).toBeGreaterThan(20);
  });

  it('follows a weight change', async () => {
    setWeight('2.0', 100);
    await expect
      .poll(async () => (await spread(20)).versions['2.0'] ?? 0, { timeout: 10_000, interval: 100 })
      .toBe(20);
    setWeight('1.0', 100);
    await expect
      .poll(async () => (await spread(20)).versions['1.0'] ?? 0, { timeout: 10_000, interval: 100 })
      .toBe(20);
  });

  it('drops an unhealthy instance', async () => {
    const before = xdsServer.version();
    // The instance reports itself UNHEALTHY in a heartbeat; the NLB's event pushes new EDS.
    const rec = nlb.nlb.registry.get('alb-blue-2')!;
    const hb = nlb.nlb.heartbeat('alb-blue-2', rec.registrationId, 'UNHEALTHY', null);
    expect(hb.acknowledged).toBe(true);
    expect(nlb.nlb.registry.get('alb-blue-2')!.health).toBe('UNHEALTHY');
    expect(xdsServer.version()).toBeGreaterThan(before);
    await expect
      .poll(async () => (await spread(20)).peers[blue2.address] ?? 0, { timeout: 10_000, interval: 100 })
      .toBe(0);
    const { peers } = await spread(20);
    expect(peers[blue.address]).toBe(20);
  });
});
