import { describe, expect, it } from 'vitest';
import {
  OPERATOR,
  pathMatches,
  routeMatches,
  RoutingTable,
  sameShape,
  specificity,
  type RequestFacts,
} from '../../services/nlb/domain/routes.js';
import type { ModuleTypeName, RouteSpec } from '../../services/nlb/domain/types.js';
import { domainError, facts, route } from './nlb-fixtures.js';

describe('routeMatches', () => {
  it.each<[string, Partial<RouteSpec>, Partial<RequestFacts>, boolean]>([
    ['an empty route matches anything', {}, {}, true],
    ['an empty route matches an unknown protocol', {}, { protocol: null }, true],
    // protocol
    ['same protocol', { protocol: 'HTTP' }, {}, true],
    ['other protocol', { protocol: 'MYSQL' }, {}, false],
    ['a protocol route does not match an unknown protocol', { protocol: 'HTTP' }, { protocol: null }, false],
    // destination port
    ['same destination port', { destinationPort: 80 }, {}, true],
    ['other destination port', { destinationPort: 8080 }, {}, false],
    ['same source port', { sourcePort: 40000 }, {}, true],
    ['other source port', { sourcePort: 40001 }, {}, false],
    // host
    ['exact host', { destinationPattern: 'example.com' }, {}, true],
    ['exact host, case-insensitive', { destinationPattern: 'Example.COM' }, { host: 'EXAMPLE.com' }, true],
    [
      'exact host ignores the Host port and a trailing dot',
      { destinationPattern: 'example.com' },
      { host: 'example.com.:8080' },
      true,
    ],
    [
      'exact host does not match a subdomain',
      { destinationPattern: 'example.com' },
      { host: 'www.example.com' },
      false,
    ],
    ['"*" host matches anything', { destinationPattern: '*' }, { host: 'anything.test' }, true],
    [
      '*.wildcard matches a subdomain',
      { destinationPattern: '*.example.com' },
      { host: 'api.example.com' },
      true,
    ],
    [
      '*.wildcard matches a deep subdomain',
      { destinationPattern: '*.example.com' },
      { host: 'a.b.example.com' },
      true,
    ],
    [
      '*.wildcard does not match the apex',
      { destinationPattern: '*.example.com' },
      { host: 'example.com' },
      false,
    ],
    [
      '*.wildcard does not match a lookalike',
      { destinationPattern: '*.example.com' },
      { host: 'badexample.com' },
      false,
    ],
    ['*.wildcard does not match an empty host', { destinationPattern: '*.example.com' }, { host: '' }, false],
    ['IPv4 host', { destinationPattern: '192.0.2.10' }, { host: '192.0.2.10:443' }, true],
    ['IPv6 host', { destinationPattern: '2001:db8::1' }, { host: '2001:db8::1' }, true],
    ['IPv6 loopback host', { destinationPattern: '::1' }, { host: '::1' }, true],
    [
      'bracketed IPv6 host with a port',
      { destinationPattern: '2001:db8::1' },
      { host: '[2001:db8::1]:443' },
      true,
    ],
    ['other IPv6 host', { destinationPattern: '2001:db8::1' }, { host: '2001:db8::2' }, false],
    // path
    ['exact path', { pathPattern: '/health' }, { path: '/health' }, true],
    ['exact path ignores the query', { pathPattern: '/health' }, { path: '/health?full=1' }, true],
    ['exact path is exact', { pathPattern: '/health' }, { path: '/healthz' }, false],
    ['prefix /api/* matches below it', { pathPattern: '/api/*' }, { path: '/api/users/7' }, true],
    ['prefix /api/* matches /api itself', { pathPattern: '/api/*' }, { path: '/api' }, true],
    ['prefix /api/* matches /api/', { pathPattern: '/api/*' }, { path: '/api/' }, true],
    ['prefix /api/* does not match /apix', { pathPattern: '/api/*' }, { path: '/apix' }, false],
    ['glob in the middle', { pathPattern: '/v*/users' }, { path: '/v2/users' }, true],
    ['glob in the middle is anchored', { pathPattern: '/v*/users' }, { path: '/v2/users/1' }, false],
    ['regex characters are literal', { pathPattern: '/a.b/*' }, { path: '/axb/c' }, false],
    ['an empty path is "/"', { pathPattern: '/' }, { path: '' }, true],
    // headers
    [
      'header present with the value',
      { headers: { 'X-Env': 'canary' } },
      { headers: { 'x-env': 'canary' } },
      true,
    ],
    [
      'header value is case-sensitive',
      { headers: { 'X-Env': 'canary' } },
      { headers: { 'x-env': 'Canary' } },
      false,
    ],
    ['header missing', { headers: { 'X-Env': 'canary' } }, { headers: {} }, false],
    ['header "*" means present', { headers: { 'X-Env': '*' } }, { headers: { 'X-ENV': 'anything' } }, true],
    ['header "*" but missing', { headers: { 'X-Env': '*' } }, { headers: { other: '1' } }, false],
    // source
    [
      'source CIDR contains the client',
      { sourcePattern: '10.0.0.0/8' },
      { sourceAddress: '10.200.3.4' },
      true,
    ],
    [
      'source CIDR excludes the client',
      { sourcePattern: '10.0.0.0/8' },
      { sourceAddress: '11.0.0.1' },
      false,
    ],
    ['source /32', { sourcePattern: '10.0.0.1/32' }, {}, true],
    ['source /32 other address', { sourcePattern: '10.0.0.2/32' }, {}, false],
    [
      'source /0 matches every IPv4 client',
      { sourcePattern: '0.0.0.0/0' },
      { sourceAddress: '203.0.113.9' },
      true,
    ],
    [
      'source CIDR with an IPv4-mapped client',
      { sourcePattern: '192.168.0.0/16' },
      { sourceAddress: '::ffff:192.168.1.1' },
      true,
    ],
    ['source single IP', { sourcePattern: '10.0.0.1' }, {}, true],
    ['source single IP, other client', { sourcePattern: '10.0.0.9' }, {}, false],
    [
      'IPv4 CIDR never matches an IPv6 client',
      { sourcePattern: '10.0.0.0/8' },
      { sourceAddress: '2001:db8::1' },
      false,
    ],
    // all together
    [
      'every field set and matching',
      {
        protocol: 'HTTPS',
        destinationPort: 443,
        destinationPattern: '*.example.com',
        pathPattern: '/api/*',
        headers: { 'x-tenant': 'a' },
        sourcePattern: '10.0.0.0/24',
      },
      {
        protocol: 'HTTPS',
        destinationPort: 443,
        host: 'shop.example.com',
        path: '/api/cart',
        headers: { 'X-Tenant': 'a' },
      },
      true,
    ],
  ])('%s', (_label, r, f, expected) => {
    expect(routeMatches(route(r), facts(f))).toBe(expected);
  });
});

describe('pathMatches', () => {
  it.each([
    ['', '/anything', true],
    ['/*', '/anything', true],
    ['*', '/anything', true],
    ['/static/*.css', '/static/site.css', true],
    ['/static/*.css', '/static/site.js', false],
    ['/a/*/c', '/a/b/c', true],
    ['/a/*/c', '/a/c', false],
  ])('%s vs %s → %s', (pattern, path, expected) => {
    expect(pathMatches(pattern, path)).toBe(expected);
  });
});

describe('specificity', () => {
  it('orders exact host > wildcard host > any host, exact path > prefix > any path', () => {
    const byHost = ['example.com', '*.example.com', '*', ''].map((h) =>
      specificity(route({ destinationPattern: h })),
    );
    expect(byHost).toEqual([4, 3, 0, 0]);
    const byPath = ['/api/users', '/api/v1/*', '/api/*', '/*', ''].map((p) =>
      specificity(route({ pathPattern: p })),
    );
    expect(byPath[0]).toBe(2);
    expect(byPath[1]).toBeGreaterThan(byPath[2]);
    expect(byPath[2]).toBeGreaterThan(byPath[3]);
    expect(byPath[3]).toBe(0);
    expect(byPath[4]).toBe(0);
  });

  it('adds protocol, port, each header and a source pattern', () => {
    expect(specificity(route())).toBe(0);
    expect(specificity(route({ protocol: 'HTTP' }))).toBe(1);
    expect(specificity(route({ destinationPort: 80 }))).toBe(2);
    expect(specificity(route({ headers: { a: '1', b: '2' } }))).toBe(2);
    expect(specificity(route({ sourcePattern: '10.0.0.0/8' }))).toBe(1);
    expect(
      specificity(
        route({ protocol: 'HTTP', destinationPort: 80, destinationPattern: 'a.com', pathPattern: '/x' }),
      ),
    ).toBe(1 + 2 + 4 + 2);
  });
});

describe('sameShape', () => {
  it.each<[string, Partial<RouteSpec>, Partial<RouteSpec>, boolean]>([
    ['identical', { destinationPattern: 'a.com' }, { destinationPattern: 'a.com' }, true],
    ['host case differs', { destinationPattern: 'A.com' }, { destinationPattern: 'a.com' }, true],
    [
      'priority and id are not part of the shape',
      { priority: 1, routeId: 'x' },
      { priority: 9, routeId: 'y' },
      true,
    ],
    ['header order and name case', { headers: { A: '1', b: '2' } }, { headers: { B: '2', a: '1' } }, true],
    ['different path', { pathPattern: '/a' }, { pathPattern: '/b' }, false],
    ['different protocol', { protocol: 'HTTP' }, { protocol: 'HTTPS' }, false],
    ['different header value', { headers: { a: '1' } }, { headers: { a: '2' } }, false],
  ])('%s → %s', (_label, a, b, expected) => {
    expect(sameShape(route(a), route(b))).toBe(expected);
  });
});

const alb = (): ModuleTypeName => 'ALB';

describe('RoutingTable', () => {
  it('applies routes for an owner and keeps createdAt when a route is replaced', () => {
    const t = new RoutingTable();
    expect(t.apply([route({ routeId: 'a' }), route({ routeId: 'b' })], 'alb-1', alb, false, 100)).toBe(2);
    expect(t.size).toBe(2);
    expect(t.revision).toBe(1);
    t.touch('a', 150);
    t.apply([route({ routeId: 'a', priority: 5 })], 'alb-1', alb, false, 200);
    expect(t.get('a')).toMatchObject({
      owner: 'alb-1',
      moduleType: 'ALB',
      createdAtMs: 100,
      lastUsedMs: 150,
    });
    expect(t.get('a')!.route.priority).toBe(5);
    expect(t.get('b')!.createdAtMs).toBe(100);
    expect(t.revision).toBe(2);
  });

  it('takes the module type from the callback', () => {
    const t = new RoutingTable();
    t.apply(
      [route({ routeId: 'db', metadata: { module_type: 'DBLB' } })],
      OPERATOR,
      (r) => r.metadata.module_type as ModuleTypeName,
      false,
      1,
    );
    expect(t.get('db')!.moduleType).toBe('DBLB');
  });

  it("replaceAll drops the owner's other routes but no one else's", () => {
    const t = new RoutingTable();
    t.apply([route({ routeId: 'a1' }), route({ routeId: 'a2' })], 'alb-1', alb, false, 1);
    t.apply([route({ routeId: 'b1' })], 'alb-2', alb, false, 1);
    t.apply([route({ routeId: 'op' })], OPERATOR, alb, false, 1);
    t.apply([route({ routeId: 'a3' })], 'alb-1', alb, true, 2);
    expect(
      t
        .all()
        .map((e) => `${e.owner}:${e.route.routeId}`)
        .sort(),
    ).toEqual([':op', 'alb-1:a3', 'alb-2:b1']);
  });

  it('refuses a route id owned by someone else and changes nothing (not even with replaceAll)', () => {
    const t = new RoutingTable();
    t.apply([route({ routeId: 'mine' }), route({ routeId: 'shared' })], 'alb-1', alb, false, 1);
    const before = structuredClone(t.all());
    const revision = t.revision;
    const e = domainError(() =>
      t.apply([route({ routeId: 'new' }), route({ routeId: 'shared', priority: 99 })], 'alb-2', alb, true, 2),
    );
    expect(e.kind).toBe('already_exists');
    expect(e.message).toBe('route shared belongs to alb-1; choose another route_id');
    expect(t.all()).toEqual(before);
    expect(t.revision).toBe(revision);
    const op = domainError(() => {
      t.apply([route({ routeId: 'opr' })], OPERATOR, alb, false, 3);
      t.apply([route({ routeId: 'opr' })], 'alb-1', alb, false, 3);
    });
    expect(op.message).toBe('route opr belongs to the operator; choose another route_id');
  });

  it("removeOwner removes only that owner's routes and counts them", () => {
    const t = new RoutingTable();
    t.apply([route({ routeId: 'a1' }), route({ routeId: 'a2' })], 'alb-1', alb, false, 1);
    t.apply([route({ routeId: 'b1' })], 'alb-2', alb, false, 1);
    const rev = t.revision;
    expect(t.removeOwner('alb-1')).toBe(2);
    expect(t.revision).toBe(rev + 1);
    expect(t.all().map((e) => e.route.routeId)).toEqual(['b1']);
    expect(t.removeOwner('nobody')).toBe(0);
    expect(t.revision).toBe(rev + 1);
  });

  it('counts connections per incarnation: a re-applied route keeps them, a re-created one starts afresh', () => {
    const t = new RoutingTable();
    t.apply([route({ routeId: 'a' })], 'x', alb, false, 1);
    const first = t.connectionOpened('a');
    expect(first).toBe(t.get('a')!.incarnation);
    t.connectionOpened('a');
    expect(t.connectionOpened('nope')).toBe(0);
    // Re-applied (e.g. a re-registration announcing the same routes): the open connections stay
    // counted and their closes count down.
    t.apply([route({ routeId: 'a', priority: 3 })], 'x', alb, true, 2);
    expect(t.get('a')!.incarnation).toBe(first);
    expect(t.get('a')!.connections).toBe(2);
    t.countConnection('a', first, -1);
    expect(t.get('a')!.connections).toBe(1);
    // Removed and created again: a new route; the old connection's close leaves it alone.
    t.remove('a');
    t.apply([route({ routeId: 'a' })], 'x', alb, false, 3);
    const second = t.get('a')!.incarnation;
    expect(second).not.toBe(first);
    t.countConnection('a', second, 1);
    t.countConnection('a', first, -1);
    expect(t.get('a')!.connections).toBe(1);
    // Never below zero, and unknown routes are ignored.
    t.countConnection('a', second, -5);
    expect(t.get('a')!.connections).toBe(0);
    t.countConnection('nope', second, 1);
  });

  it('remove deletes one route or fails with NOT_FOUND', () => {
    const t = new RoutingTable();
    t.apply([route({ routeId: 'a' })], 'x', alb, false, 1);
    expect(t.remove('a').route.routeId).toBe('a');
    expect(t.size).toBe(0);
    const e = domainError(() => t.remove('a'));
    expect(e.kind).toBe('not_found');
    expect(e.message).toBe('route a does not exist');
  });

  it('matches best first: priority, then specificity, then operator routes, then route id', () => {
    const t = new RoutingTable();
    t.apply(
      [
        route({ routeId: 'any', priority: 0 }),
        route({ routeId: 'wild', priority: 10, destinationPattern: '*.example.com' }),
        route({ routeId: 'exact', priority: 10, destinationPattern: 'api.example.com' }),
        route({ routeId: 'high-vague', priority: 50 }),
        route({ routeId: 'other-host', priority: 100, destinationPattern: 'other.com' }),
        route({ routeId: 'z-tie', priority: 10, destinationPattern: 'api.example.com' }),
      ],
      'alb-1',
      alb,
      false,
      1,
    );
    t.apply(
      [route({ routeId: 'zz-op', priority: 10, destinationPattern: 'api.example.com' })],
      OPERATOR,
      alb,
      false,
      1,
    );
    const order = t.match(facts({ host: 'api.example.com' })).map((e) => e.route.routeId);
    expect(order).toEqual(['high-vague', 'zz-op', 'exact', 'z-tie', 'wild', 'any']);
  });

  it('a negative priority sorts after zero, and a non-match is left out', () => {
    const t = new RoutingTable();
    t.apply(
      [
        route({ routeId: 'neg', priority: -5, pathPattern: '/x' }),
        route({ routeId: 'zero' }),
        route({ routeId: 'miss', protocol: 'MYSQL' }),
      ],
      'o',
      alb,
      false,
      1,
    );
    expect(t.match(facts({ path: '/x' })).map((e) => e.route.routeId)).toEqual(['zero', 'neg']);
  });
});
