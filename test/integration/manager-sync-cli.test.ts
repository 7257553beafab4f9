/**
 * `mpctl config sync` against a Manager mocked with msw and a real NLB on loopback: applies
 * through the NLB's RPCs, validates first, maps Manager failures onto exit codes.
 */
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeOf, mpctl } from '../cli/support/oclif.js';
import { startRealNlb, type RealNlb } from '../cli/support/real-nlb.js';

const MANAGER = 'http://manager.test:8000';
const DOC_URL = `${MANAGER}/api/v1/nlb/config`;
// gRPC (HTTP/2) to the loopback NLB is not intercepted by msw; only the Manager is mocked.
const server = setupServer();
let nlb: RealNlb;
beforeAll(async () => {
  server.listen({ onUnhandledRequest: 'error' });
  nlb = await startRealNlb();
  await nlb.register('alb-blue-1', '127.0.0.1:1', { version: '1.0' });
  await nlb.register('alb-green-1', '127.0.0.1:2', { version: '2.0' });
});
afterEach(() => server.resetHandlers());
afterAll(async () => {
  server.close();
  await nlb.close();
});

const DOC = {
  revision: 7,
  routes: [{ id: 'shop', module: 'alb', protocol: 'http', host: 'shop.example.com' }],
  scalingPolicies: [{ module: 'alb', maxInstances: 4 }],
  deployments: [{ module: 'alb', weights: { '1.0': 70, '2.0': 30 } }],
};

const sync = (...extra: string[]) =>
  mpctl(['config', 'sync', '--nlb', nlb.address, '--manager', MANAGER, '--api-key', 'k-123', ...extra]);

describe('mpctl config sync', () => {
  it('--dry-run validates and changes nothing; a real run applies through the RPCs', async () => {
    let auth = '';
    server.use(
      http.get(DOC_URL, ({ request }) => {
        auth = request.headers.get('authorization') ?? '';
        return HttpResponse.json(DOC);
      }),
    );
    const dry = await sync('--dry-run', '--json');
    expect(exitCodeOf(dry), dry.stderr).toBe(0);
    expect(auth).toBe('Bearer k-123');
    expect(nlb.handle.nlb.routes.get('manager:shop')).toBeUndefined();
    const res = await sync('--json');
    expect(exitCodeOf(res), res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({
      revision: '7',
      applied: { routes: 1, scalingPolicies: 1, deployments: 1 },
    });
    expect(nlb.handle.nlb.routes.get('manager:shop')?.moduleType).toBe('ALB');
    expect(nlb.handle.nlb.config.scaling.overrides.ALB).toMatchObject({ maxInstances: 4 });
    expect(nlb.handle.nlb.deployment('ALB').weights).toEqual({ '1.0': 70, '2.0': 30 });
  });

  it('exits 5 on 401, 4 on 500, 6 on an invalid document, changing nothing', async () => {
    const before = nlb.handle.nlb.deployment('ALB').weights;
    server.use(http.get(DOC_URL, () => HttpResponse.json({}, { status: 401 })));
    const r401 = await sync();
    expect(exitCodeOf(r401)).toBe(5);
    expect(r401.stderr).toMatch(/refused the API key/);
    server.use(http.get(DOC_URL, () => HttpResponse.json({}, { status: 500 })));
    expect(exitCodeOf(await sync())).toBe(4);
    server.use(http.get(DOC_URL, () => HttpResponse.json({ routes: 'nope' })));
    const bad = await sync();
    expect(exitCodeOf(bad)).toBe(6);
    expect(bad.stderr).toMatch(/document is invalid: routes/);
    server.use(
      http.get(DOC_URL, () =>
        HttpResponse.json({ ...DOC, scalingPolicies: [{ module: 'alb', minInstances: 9, maxInstances: 2 }] }),
      ),
    );
    expect(exitCodeOf(await sync())).toBe(6);
    expect(nlb.handle.nlb.deployment('ALB').weights).toEqual(before);
  });
});
