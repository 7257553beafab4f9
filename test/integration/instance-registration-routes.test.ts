/**
 * Routes pushed to an instance while its registration is in flight: the registration request
 * already went out with the old routes and the instance was not registered yet, so neither
 * carried the new ones. Before the fix they never reached the NLB (until the next route change);
 * now the instance sends them as soon as it is registered. (Found by fault-nlb.test.ts in CI.)
 */
import { afterEach, expect, it } from 'vitest';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import type { NlbApi } from '../../services/modules/runtime/nlb-api.js';
import { createHttpHarness, route, stubNlb, waitFor } from './alb-fixture.js';

const h = createHttpHarness();
let release: () => void = () => undefined;
afterEach(async () => {
  release();
  await h.closeAll();
});

it('routes pushed while the registration is in flight reach the NLB once it registers', async () => {
  const registered = new Promise<void>((r) => (release = r));
  const sent: Array<[kind: string, routes: string[]]> = [];
  const base = stubNlb();
  const nlb: NlbApi = {
    ...base,
    register: async (req) => {
      sent.push(['register', req.initialRoutes.map((r) => r.routeId)]);
      await registered;
      return base.register(req);
    },
    updateRouting: (req) => {
      sent.push(['update', req.routes.map((r) => r.routeId)]);
      return base.updateRouting(req);
    },
  };
  const alb = await h.instance(albPlugin, { backends: [] }, [], [], { nlb });
  await waitFor('the registration to be sent', () => sent.length === 1, 5000);
  await alb.apply({ routes: [route('shop', { destinationPattern: 'shop.example.com' })] });
  expect(sent).toEqual([['register', []]]);

  release();
  await waitFor('the routes to be announced', () => sent.length === 2, 5000);
  expect(sent).toEqual([
    ['register', []],
    ['update', [`${alb.runtime.id}:shop`]],
  ]);
  // Nothing changed since: another push sends nothing more.
  await alb.apply({});
  expect(sent).toHaveLength(2);
});
