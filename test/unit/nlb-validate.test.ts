import { describe, expect, it } from 'vitest';
import {
  checkAddress,
  checkId,
  checkMap,
  checkVersion,
  checkWeight,
  isHostPattern,
  parseHostPort,
  parseModuleType,
  validateInstanceSpec,
  validateRoute,
} from '../../services/nlb/domain/validate.js';
import type { RouteSpec } from '../../services/nlb/domain/types.js';
import { Problems } from '../../services/shared/errors.js';
import { route, spec } from './nlb-fixtures.js';

/** Runs a check into a fresh Problems and returns its lines. */
const run = (check: (p: Problems) => void): string[] => {
  const p = new Problems();
  check(p);
  return p.list;
};

describe('parseHostPort', () => {
  it.each<[string, { host: string; port: number } | null]>([
    ['127.0.0.1:50051', { host: '127.0.0.1', port: 50051 }],
    ['localhost:80', { host: 'localhost', port: 80 }],
    ['alb.internal.example.com:443', { host: 'alb.internal.example.com', port: 443 }],
    ['[::1]:80', { host: '::1', port: 80 }],
    ['[2001:db8::1]:65535', { host: '2001:db8::1', port: 65535 }],
    ['host:1', { host: 'host', port: 1 }],
    ['host:0', null],
    ['host:65536', null],
    ['host:123456', null],
    ['host:', null],
    ['host', null],
    [':80', null],
    ['::1:80', null],
    ['[::1]', null],
    ['[not-an-ip]:80', null],
    ['bad host:80', null],
    ['-leading-dash:80', null],
    ['a..b:80', null],
    ['http://x:80', null],
    ['', null],
  ])('%j → %o', (value, expected) => {
    expect(parseHostPort(value)).toEqual(expected);
  });
});

describe('checkAddress', () => {
  it.each<[string, boolean, string[]]>([
    ['', false, []],
    ['', true, ['instance.address is required (host:port, e.g. 127.0.0.1:50051)']],
    ['127.0.0.1:1', true, []],
    [
      '127.0.0.1:99999',
      true,
      ['instance.address "127.0.0.1:99999" is not host:port with a port from 1 to 65535'],
    ],
  ])('%j (required %s)', (value, required, expected) => {
    expect(run((p) => checkAddress(p, 'instance.address', value, required))).toEqual(expected);
  });
});

describe('checkId', () => {
  it.each<[string, boolean, string[]]>([
    ['alb-1', true, []],
    ['A.b_c:d-9', true, []],
    ['x'.repeat(128), true, []],
    ['', true, ['instance_id is required']],
    ['', false, []],
    [
      'x'.repeat(129),
      true,
      [`instance_id "${'x'.repeat(64)}…" must be 1-128 characters of A-Z a-z 0-9 . _ : -`],
    ],
    ['has space', true, ['instance_id "has space" must be 1-128 characters of A-Z a-z 0-9 . _ : -']],
    ['slash/no', true, ['instance_id "slash/no" must be 1-128 characters of A-Z a-z 0-9 . _ : -']],
  ])('%j (required %s)', (value, required, expected) => {
    expect(run((p) => checkId(p, 'instance_id', value, required))).toEqual(expected);
  });
});

describe('checkVersion', () => {
  it.each<[string, string[]]>([
    ['1.0', []],
    ['2.0.0-rc.1+build5', []],
    ['v2', []],
    ['', ['version is required (e.g. 1.0)']],
    ['.1', ['version ".1" must be 1-64 characters of A-Z a-z 0-9 . _ + - starting with a letter or digit']],
    ['1 0', ['version "1 0" must be 1-64 characters of A-Z a-z 0-9 . _ + - starting with a letter or digit']],
    [
      '1'.repeat(65),
      [
        `version "${'1'.repeat(64)}…" must be 1-64 characters of A-Z a-z 0-9 . _ + - starting with a letter or digit`,
      ],
    ],
  ])('%j', (value, expected) => {
    expect(run((p) => checkVersion(p, 'version', value))).toEqual(expected);
  });
});

describe('checkWeight', () => {
  it.each<[number, boolean]>([
    [0, true],
    [100, true],
    [55, true],
    [-1, false],
    [101, false],
    [0.5, false],
    [NaN, false],
  ])('%d valid: %s', (w, ok) => {
    expect(run((p) => checkWeight(p, 'weight', w))).toEqual(
      ok ? [] : [`weight ${w} is out of range: use 0 to 100`],
    );
  });
});

describe('checkMap', () => {
  it('limits entries, key and value lengths, and key syntax', () => {
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    expect(run((p) => checkMap(p, 'metadata', many))).toEqual([
      'metadata has 65 entries; at most 64 are allowed',
    ]);
    expect(run((p) => checkMap(p, 'metadata', { k: 'v'.repeat(1025) }))).toEqual([
      'metadata["k"] is longer than 1024 characters',
    ]);
    expect(run((p) => checkMap(p, 'metadata', { '': 'v' }))).toEqual(['metadata key "" is not a valid name']);
    expect(run((p) => checkMap(p, 'headers', { 'bad name': 'v' }, /^[a-z-]+$/))).toEqual([
      'headers key "bad name" is not a valid name',
    ]);
    expect(run((p) => checkMap(p, 'metadata', { zone: 'a', tier: 'b' }))).toEqual([]);
  });
});

describe('parseModuleType and isHostPattern', () => {
  it.each([
    ['alb', 'ALB'],
    ['Dblb', 'DBLB'],
    ['RTMP', 'RTMP'],
    ['nlb', null],
    ['', null],
  ])('parseModuleType(%j) → %s', (v, expected) => {
    expect(parseModuleType(v)).toBe(expected);
  });

  it.each([
    ['', true],
    ['*', true],
    ['example.com', true],
    ['*.example.com', true],
    ['10.0.0.1', true],
    ['::1', true],
    ['*.*.example.com', false],
    ['exa mple.com', false],
    ['example.com/x', false],
  ])('isHostPattern(%j) → %s', (v, expected) => {
    expect(isHostPattern(v)).toBe(expected);
  });
});

describe('validateInstanceSpec', () => {
  it('accepts a complete spec', () => {
    expect(run((p) => validateInstanceSpec(p, spec()))).toEqual([]);
  });

  it('names every bad field', () => {
    const bad = spec({
      instanceId: 'bad id',
      address: 'nowhere',
      trafficAddress: 'x:0',
      version: '',
      maxConnections: -1,
    });
    expect(run((p) => validateInstanceSpec(p, bad))).toEqual([
      'instance.instance_id "bad id" must be 1-128 characters of A-Z a-z 0-9 . _ : -',
      'instance.address "nowhere" is not host:port with a port from 1 to 65535',
      'instance.traffic_address "x:0" is not host:port with a port from 1 to 65535',
      'instance.version is required (e.g. 1.0)',
      'instance.max_connections -1 is out of range: use 0 (no limit) to 10000000',
    ]);
  });
});

describe('validateRoute', () => {
  it('accepts a full, valid route', () => {
    const r = route({
      routeId: 'web',
      protocol: 'HTTP',
      sourcePattern: '10.0.0.0/8',
      destinationPattern: '*.example.com',
      destinationPort: 443,
      pathPattern: '/api/*',
      headers: { 'X-Tenant': 'a' },
      priority: 100,
      metadata: { module_type: 'alb' },
    });
    expect(run((p) => validateRoute(p, r, 'routes[0]'))).toEqual([]);
  });

  it.each<[string, Partial<RouteSpec>, string]>([
    [
      'route id',
      { routeId: 'a b' },
      'routes[0].route_id "a b" must be 1-128 characters of A-Z a-z 0-9 . _ : -',
    ],
    [
      'source pattern',
      { sourcePattern: '10.0.0.0/33' },
      'routes[0].source_pattern "10.0.0.0/33" is not an IP, CIDR or domain',
    ],
    [
      'source pattern junk',
      { sourcePattern: '10.0.0.0/8/8' },
      'routes[0].source_pattern "10.0.0.0/8/8" is not an IP, CIDR or domain',
    ],
    [
      'destination pattern',
      { destinationPattern: 'http://x' },
      'routes[0].destination_pattern "http://x" is not a host, *.domain wildcard or IP',
    ],
    [
      'destination port',
      { destinationPort: 65536 },
      'routes[0].destination_port 65536 is out of range: use 0 (any) to 65535',
    ],
    ['source port', { sourcePort: -1 }, 'routes[0].source_port -1 is out of range: use 0 (any) to 65535'],
    [
      'relative path',
      { pathPattern: 'api/*' },
      'routes[0].path_pattern "api/*" must start with / and contain no spaces (e.g. /api/*)',
    ],
    [
      'path with a space',
      { pathPattern: '/a b' },
      'routes[0].path_pattern "/a b" must start with / and contain no spaces (e.g. /api/*)',
    ],
    [
      'priority',
      { priority: 1_000_001 },
      'routes[0].priority 1000001 is out of range: use -1000000 to 1000000',
    ],
    ['header name', { headers: { 'X Bad': '1' } }, 'routes[0].headers key "X Bad" is not a valid name'],
    [
      'module type',
      { metadata: { module_type: 'XLB' } },
      'routes[0].metadata.module_type "XLB" is not one of ALB, DBLB, AILB, RTMP',
    ],
  ])('names a bad %s', (_label, over, message) => {
    expect(run((p) => validateRoute(p, route(over), 'routes[0]'))).toEqual([message]);
  });

  it('accepts IPv6 sources and CIDRs, and an empty route id', () => {
    expect(run((p) => validateRoute(p, route({ routeId: '', sourcePattern: '2001:db8::/32' }), 'r'))).toEqual(
      [],
    );
    expect(run((p) => validateRoute(p, route({ sourcePattern: '2001:db8::/129' }), 'r'))).toEqual([
      'r.source_pattern "2001:db8::/129" is not an IP, CIDR or domain',
    ]);
  });
});
