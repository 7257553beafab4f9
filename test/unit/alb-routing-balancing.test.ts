/**
 * The ALB's pure parts: the compiled route table (against the NLB's shared routeMatches, over
 * many generated requests), path and host normalisation, and backend pools (smooth weighted
 * round robin, least request, passive ejection, health).
 */
import { describe, expect, it } from 'vitest';
import { routeMatches, specificity } from '../../services/nlb/domain/routes.js';
import type { RouteSpec } from '../../services/nlb/domain/types.js';
import {
  matchPath,
  normaliseHost,
  RouteTable,
  type HttpRequestFacts,
} from '../../services/modules/alb/route-table.js';
import { BackendPool, type BackendEvent } from '../../services/modules/common/http/backend-pool.js';
import { createRng } from '../../services/shared/rng.js';

const route = (id: string, over: Partial<RouteSpec> = {}): RouteSpec => ({
  routeId: id,
  protocol: null,
  sourcePattern: '',
  destinationPattern: '',
  sourcePort: 0,
  destinationPort: 0,
  headers: {},
  pathPattern: '',
  priority: 0,
  metadata: {},
  ...over,
});

const facts = (over: Partial<HttpRequestFacts> = {}): HttpRequestFacts => ({
  host: 'example.com',
  path: '/',
  rawHeaders: [],
  clientAddress: '10.0.0.1',
  clientPort: 40000,
  destinationPort: 80,
  tls: false,
  upgrade: false,
  ...over,
});

describe('RouteTable', () => {
  it('matches as the shared routeMatches does, over generated routes and requests', () => {
    const rng = createRng(7);
    const pick = <T>(xs: readonly T[]): T => xs[rng.int(0, xs.length - 1)];
    const hosts = ['', '*', 'api.example.com', '*.example.com', 'EXAMPLE.org', '*.org'];
    const paths = ['', '/*', '/api', '/api/*', '/api/*/items', '*.json', '/a*b'];
    const headers: Array<Record<string, string>> = [{}, { 'x-env': 'beta' }, { 'X-Env': '*' }];
    const sources = ['', '10.0.0.0/8', '192.168.1.5'];
    const protocols = [null, 'HTTP', 'HTTPS'] as const;
    const routes = Array.from({ length: 60 }, (_, i) =>
      route(`r${i}`, {
        destinationPattern: pick(hosts),
        pathPattern: pick(paths),
        headers: pick(headers),
        sourcePattern: pick(sources),
        protocol: pick(protocols),
        destinationPort: pick([0, 0, 80, 8080]),
        priority: rng.int(0, 3),
      }),
    );
    const reqHosts = [
      'api.example.com',
      'API.EXAMPLE.COM:8080',
      'example.com',
      'x.example.org',
      'example.org.',
      '[::1]:80',
      '',
    ];
    const reqPaths = [
      '/',
      '/api',
      '/api/',
      '/api/v1/items',
      '/api/x/items?q=1',
      '/data.json',
      '/ab',
      '/axxb',
      '/api/../x',
    ];
    const table = new RouteTable(routes, 'default');
    for (let n = 0; n < 3000; n++) {
      const f = facts({
        host: pick(reqHosts),
        path: pick(reqPaths),
        rawHeaders: pick([[], ['X-Env', 'beta'], ['x-env', 'alpha']]),
        clientAddress: pick(['10.1.2.3', '192.168.1.5', '::ffff:10.0.0.9']),
        destinationPort: pick([80, 8080]),
        tls: rng.next() < 0.3,
      });
      const shared: Record<string, string> = {};
      for (let i = 0; i < f.rawHeaders.length; i += 2) shared[f.rawHeaders[i]] = f.rawHeaders[i + 1];
      const expected = routes
        .filter((r) =>
          routeMatches(r, {
            protocol: f.tls ? 'HTTPS' : 'HTTP',
            host: f.host,
            destinationPort: f.destinationPort,
            path: matchPath(f.path),
            headers: shared,
            sourceAddress: f.clientAddress,
            sourcePort: f.clientPort,
          }),
        )
        .sort(
          (a, b) =>
            b.priority - a.priority || specificity(b) - specificity(a) || a.routeId.localeCompare(b.routeId),
        );
      expect(table.match(f)?.id ?? null, JSON.stringify(f)).toBe(expected[0]?.routeId ?? null);
    }
  });

  it('picks the pool from route metadata, else the default; with no routes everything goes to the default', () => {
    const t = new RouteTable(
      [route('a', { pathPattern: '/a/*', metadata: { pool: 'pa' } }), route('b', { pathPattern: '/b' })],
      'dflt',
    );
    expect(t.match(facts({ path: '/a/1' }))?.pool).toBe('pa');
    expect(t.match(facts({ path: '/b' }))?.pool).toBe('dflt');
    expect(t.match(facts({ path: '/c' }))).toBeNull();
    expect(new RouteTable([], 'dflt').match(facts())).toMatchObject({ id: '', pool: 'dflt' });
  });

  it('matches WEBSOCKET routes only for upgrades, and never HTTP2/GRPC ones', () => {
    const t = new RouteTable([route('ws', { protocol: 'WEBSOCKET' }), route('g', { protocol: 'GRPC' })], 'd');
    expect(t.match(facts({ upgrade: true }))?.id).toBe('ws');
    expect(t.match(facts())).toBeNull();
  });

  it('normalises hosts and paths', () => {
    expect(normaliseHost('API.Example.com:8443')).toBe('api.example.com');
    expect(normaliseHost('example.com.')).toBe('example.com');
    expect(normaliseHost('[2001:db8::1]:80')).toBe('2001:db8::1');
    expect(normaliseHost('2001:db8::1')).toBe('2001:db8::1');
    expect(matchPath('/a/b?x=1')).toBe('/a/b');
    expect(matchPath('/a/../b')).toBe('/b');
    expect(matchPath('/a/%2e%2E/admin/')).toBe('/admin/');
    expect(matchPath('//double//slash')).toBe('/double/slash');
    expect(matchPath('/../../etc')).toBe('/etc');
    expect(matchPath('?q')).toBe('/');
  });
});

const settings = {
  maxIdle: 4,
  idleTimeoutMs: 1000,
  connectTimeoutMs: 1000,
  responseTimeoutMs: 1000,
  bodyIdleTimeoutMs: 1000,
  maxResponseHeadBytes: 4096,
};

function pool(balancing: 'round_robin' | 'least_request', weights: Record<string, number>, ejection = {}) {
  const events: BackendEvent[] = [];
  const p = new BackendPool(
    'p',
    balancing,
    { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 5000, maxEjectedPercent: 50, ...ejection },
    (e) => events.push(e),
  );
  p.update(
    Object.entries(weights).map(([name, weight], i) => ({
      name,
      address: `127.0.0.1:${10_000 + i}`,
      weight,
    })),
    settings,
    0,
  );
  return { p, events, b: (name: string) => p.backends.find((x) => x.name === name)! };
}

describe('BackendPool', () => {
  it("spreads by weight with nginx's smooth weighted round robin", () => {
    const { p } = pool('round_robin', { a: 5, b: 1, c: 1 });
    const seq = Array.from({ length: 14 }, () => p.pick(0)!.name).join('');
    // nginx's documented order for weights 5, 1, 1: a a b a c a a, repeating.
    expect(seq).toBe('aabacaaaabacaa');
    const { p: drained } = pool('round_robin', { a: 1, b: 0 });
    expect(new Set(Array.from({ length: 5 }, () => drained.pick(0)!.name))).toEqual(new Set(['a']));
  });

  it('prefers the backend with fewer requests in flight per weight', () => {
    const { p, b } = pool('least_request', { a: 1, b: 1, c: 2 });
    b('a').active = 3;
    b('b').active = 1;
    b('c').active = 2;
    // Scores: a 4, b 2, c 1.5.
    expect(p.pick(0)?.name).toBe('c');
    b('c').active = 5;
    expect(p.pick(0)?.name).toBe('b');
    expect(p.pick(0, b('b'))?.name).toBe('c');
  });

  it('ejects after consecutive failures, for longer each time, never beyond the share', () => {
    const { p, b, events } = pool('round_robin', { a: 1, b: 1, c: 1, d: 1 });
    for (let i = 0; i < 3; i++) p.failed(b('a'), 0);
    expect(events).toEqual([{ kind: 'ejected', backend: 'a', forMs: 1000 }]);
    expect(b('a').usable(500)).toBe(false);
    expect(b('a').usable(1000)).toBe(true);
    // A success resets the streak.
    p.failed(b('a'), 2000);
    p.failed(b('a'), 2000);
    p.succeeded(b('a'));
    p.failed(b('a'), 2000);
    expect(events).toHaveLength(1);
    for (let i = 0; i < 3; i++) p.failed(b('a'), 3000);
    expect(events[1]).toEqual({ kind: 'ejected', backend: 'a', forMs: 2000 });
    // 50 %: a and b may be out together, c may not join them.
    for (let i = 0; i < 3; i++) p.failed(b('b'), 3000);
    for (let i = 0; i < 3; i++) p.failed(b('c'), 3000);
    expect(events.map((e) => e.backend)).toEqual(['a', 'a', 'b']);
    expect(new Set(Array.from({ length: 4 }, () => p.pick(3000)!.name))).toEqual(new Set(['c', 'd']));
  });

  it('follows active health, and forgets ejections when a backend is healthy again', () => {
    const { p, b, events } = pool('round_robin', { a: 1 });
    for (let i = 0; i < 3; i++) p.failed(b('a'), 0);
    p.setHealth(b('a'), false, 'HTTP 503');
    expect(p.pick(10_000)).toBeNull();
    p.setHealth(b('a'), true, 'HTTP 200');
    expect(p.pick(10)?.name).toBe('a');
    expect(events.map((e) => e.kind)).toEqual(['ejected', 'unhealthy', 'healthy']);
  });

  it('keeps unchanged backends (and their connections) across updates', () => {
    const { p, b } = pool('round_robin', { a: 1, b: 1 });
    const a = b('a');
    a.active = 2;
    p.update(
      [
        { name: 'a', address: '127.0.0.1:10000', weight: 3 },
        { name: 'c', address: '127.0.0.1:10009', weight: 1 },
      ],
      settings,
      0,
    );
    expect(p.backends.map((x) => x.name)).toEqual(['a', 'c']);
    expect(b('a')).toBe(a);
    expect(b('a').spec.weight).toBe(3);
    p.update([{ name: 'a', address: '127.0.0.1:10001', weight: 3 }], settings, 0);
    expect(b('a')).not.toBe(a);
    p.close();
  });
});
