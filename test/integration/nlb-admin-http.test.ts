/**
 * The NLB's HTTP admin endpoint over loopback: /healthz, /readyz and the Prometheus /metrics
 * series (instances by type/version/health, heartbeats, RPCs by method and code, routing
 * decisions, scaling and rollout events) while instances heartbeat and routes are used.
 */
import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createNlbHarness,
  heartbeatLoop,
  instance,
  Protocol,
  register,
  route,
  setWeight,
  waitFor,
  type FakeModule,
  type TestNlb,
} from './nlb-fixture.js';

const h = createNlbHarness();
let nlb: TestNlb;
let fake: FakeModule;

beforeEach(async () => {
  fake = await h.fakeModule();
  nlb = await h.startNlb({ heartbeatIntervalSeconds: 1 });
});
afterEach(() => h.closeAll());

/** The value of the sample `name{labels}` (labels in exposition order), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The sum of every sample of `name` whose labels include `labels`. */
function sumOf(text: string, name: string, labels: Record<string, string> = {}): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .filter((l) => Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function get(
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string; body: string; allow?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${nlb.adminUrl}${path}`, { method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type']),
          body,
          allow: res.headers.allow,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin HTTP', () => {
  it('answers /healthz and /readyz, and refuses other paths and methods', async () => {
    expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get('/readyz')).toMatchObject({ status: 200, body: 'ready\n' });
    expect(await get('/healthz?verbose=1')).toMatchObject({ status: 200 });
    expect(await get('/nope')).toMatchObject({
      status: 404,
      body: 'not found: try /healthz, /readyz or /metrics\n',
    });
    expect(await get('/metrics', 'POST')).toMatchObject({ status: 405, allow: 'GET, HEAD' });
    expect((await get('/healthz', 'HEAD')).status).toBe(200);
  });

  it('exposes the NLB series while instances heartbeat and routes are used', async () => {
    const fleet = [
      instance('alb-1', fake.address),
      instance('alb-2', fake.address),
      instance('alb-v2', fake.address, { version: '2.0' }),
    ];
    for (const i of fleet) await register(nlb.rpc, i);
    const loop = heartbeatLoop(nlb.rpc, fleet, 200);
    try {
      await waitFor('a few heartbeats', () => loop.counts.beats >= 6 || undefined, 10_000);
      await nlb.rpc('updateRouting', { routes: [route({ routeId: 'web', moduleType: 'ALB' })] });
      for (let i = 0; i < 3; i++)
        await nlb.rpc('routeRequest', {
          route: { protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'shop.example.com' },
        });
      await nlb.rpc('routeRequest', { route: { protocol: Protocol.PROTOCOL_POSTGRES } }); // no route
      await nlb.rpc('routeRequest', { route: { protocol: Protocol.PROTOCOL_HTTP }, dryRun: true }); // not counted
      expect((await nlb.rpc('triggerScaling', { instanceId: 'alb-1', targetInstances: 4 })).success).toBe(
        true,
      );
      await setWeight(nlb.rpc, '2.0', 25);
      await nlb.rpc('getModuleInfo', { instanceId: 'ghost' }).catch(() => undefined);
      await nlb.rpc('heartbeat', { instanceId: 'ghost' });

      const res = await get('/metrics');
      expect(res.status).toBe(200);
      expect(res.type).toContain('text/plain');
      const m = res.body;
      expect(sample(m, 'mp_nlb_instances{module_type="ALB",version="1.0",health="HEALTHY"}')).toBe(2);
      expect(sample(m, 'mp_nlb_instances{module_type="ALB",version="2.0",health="HEALTHY"}')).toBe(1);
      expect(
        sample(m, 'mp_nlb_heartbeats_total{acknowledged="true",module_type="ALB"}'),
      ).toBeGreaterThanOrEqual(6);
      expect(sample(m, 'mp_nlb_heartbeats_total{acknowledged="false",module_type="unknown"}')).toBe(1);
      expect(sample(m, 'mp_nlb_rpcs_total{method="RegisterModule",code="OK"}')).toBe(3);
      expect(sample(m, 'mp_nlb_rpcs_total{method="Heartbeat",code="OK"}')).toBeGreaterThanOrEqual(7);
      expect(sample(m, 'mp_nlb_rpcs_total{method="GetModuleInfo",code="NOT_FOUND"}')).toBe(1);
      expect(sample(m, 'mp_nlb_rpcs_total{method="RouteRequest",code="OK"}')).toBe(5);
      expect(sample(m, 'mp_nlb_rpc_duration_seconds_count{method="RouteRequest"}')).toBe(5);
      // 3 routed (all to 1.0: a new version starts at weight 0), 1 without a route, the dry run not counted.
      expect(
        sample(m, 'mp_nlb_routing_decisions_total{result="routed",module_type="ALB",version="1.0"}'),
      ).toBe(3);
      expect(sumOf(m, 'mp_nlb_routing_decisions_total', { result: 'routed' })).toBe(3);
      expect(sample(m, 'mp_nlb_routing_decisions_total{result="no_route",module_type="",version=""}')).toBe(
        1,
      );
      expect(
        sample(
          m,
          'mp_nlb_scaling_events_total{module_type="ALB",version="1.0",action="scale-to",outcome="ok"}',
        ),
      ).toBe(1);
      expect(
        sample(m, 'mp_nlb_rollout_events_total{module_type="ALB",action="SET_WEIGHT",phase="STABLE"}'),
      ).toBe(1);
      expect(sample(m, 'mp_nlb_deployment_weight{module_type="ALB",version="2.0"}')).toBe(25);
      expect(sample(m, 'mp_nlb_routes{owner="operator"}')).toBe(1);
      expect(sample(m, 'mp_nlb_registry_events_total{event="registered",reason="",module_type="ALB"}')).toBe(
        3,
      );
      expect(m).toMatch(/^mp_nlb_process_cpu_seconds_total \d/m);
    } finally {
      await loop.stop();
    }
  });

  it('shows a silent instance turning UNHEALTHY', async () => {
    await register(nlb.rpc, instance('alb-1', fake.address));
    const unhealthy = 'mp_nlb_instances{module_type="ALB",version="1.0",health="UNHEALTHY"}';
    // 3 missed 1 s heartbeats; the sweep runs every 500 ms.
    const text = await waitFor(
      'the instance to turn UNHEALTHY',
      async () => {
        const body = (await get('/metrics')).body;
        return sample(body, unhealthy) === 1 && body;
      },
      10_000,
      200,
    );
    expect(
      sample(text, 'mp_nlb_instances{module_type="ALB",version="1.0",health="HEALTHY"}'),
    ).toBeUndefined();
    expect(
      sample(
        text,
        'mp_nlb_registry_events_total{event="health",reason="HEALTHY->UNHEALTHY",module_type="ALB"}',
      ),
    ).toBe(1);
  });
});
