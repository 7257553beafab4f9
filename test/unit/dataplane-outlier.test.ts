/** Outlier ejection: thresholds, expiry, the cap on a pool's ejected share, success resets. */
import { describe, expect, it } from 'vitest';
import { OutlierDetector } from '../../services/nlb/dataplane/outlier.js';
import { routeHost, routePath, routeSpecOf } from '../../services/nlb/dataplane/route-facts.js';

describe('OutlierDetector', () => {
  it('ejects after 5 consecutive failures for 30 s, then takes the instance back', () => {
    const o = new OutlierDetector();
    for (let i = 0; i < 4; i++) expect(o.failure('a', 'ALB', 4, 1000)).toBeNull();
    expect(o.ejected('a', 1000)).toBe(false);
    expect(o.failure('a', 'ALB', 4, 1000)).toEqual({
      type: 'ejected',
      instanceId: 'a',
      pool: 'ALB',
      untilMs: 31_000,
      failures: 5,
    });
    expect(o.ejected('a', 30_999)).toBe(true);
    expect(o.ejectedInstances(2000)).toEqual([{ instanceId: 'a', pool: 'ALB', untilMs: 31_000 }]);
    expect(o.ejected('a', 31_000)).toBe(false);
    // Back in, it needs a fresh streak to go out again.
    for (let i = 0; i < 4; i++) expect(o.failure('a', 'ALB', 4, 32_000)).toBeNull();
    expect(o.failure('a', 'ALB', 4, 32_000)?.type).toBe('ejected');
  });

  it('a success ends the streak', () => {
    const o = new OutlierDetector();
    for (let i = 0; i < 4; i++) o.failure('a', 'ALB', 2, 0);
    o.success('a');
    for (let i = 0; i < 4; i++) expect(o.failure('a', 'ALB', 2, 0)).toBeNull();
    expect(o.ejected('a', 0)).toBe(false);
  });

  it('never ejects more than half of a pool; other pools are counted apart', () => {
    const o = new OutlierDetector();
    const fail5 = (id: string, pool: string, size: number) => {
      let last = null;
      for (let i = 0; i < 5; i++) last = o.failure(id, pool, size, 0);
      return last;
    };
    expect(fail5('a', 'ALB', 3)?.type).toBe('ejected');
    expect(fail5('b', 'ALB', 3)).toEqual({
      type: 'cap-reached',
      instanceId: 'b',
      pool: 'ALB',
      ejected: 1,
      poolSize: 3,
    });
    expect(o.ejected('b', 0)).toBe(false);
    expect(fail5('d', 'DBLB', 2)?.type).toBe('ejected');
    // A lone instance is never ejected: there is nowhere else to go.
    expect(fail5('r', 'RTMP', 1)?.type).toBe('cap-reached');
    o.forget('a');
    expect(o.ejected('a', 0)).toBe(false);
  });
  it('counts the pool only when a streak reaches the threshold', () => {
    const o = new OutlierDetector();
    let counted = 0;
    const size = () => (counted++, 4);
    for (let i = 0; i < 4; i++) o.failure('a', 'ALB', size, 0);
    expect(counted).toBe(0);
    expect(o.failure('a', 'ALB', size, 0)?.type).toBe('ejected');
    expect(counted).toBe(1);
  });
});

describe('route facts', () => {
  it('normalises hosts and paths from the wire, dropping what cannot be a route field', () => {
    expect(routeHost('Shop.Example.COM:8080')).toBe('shop.example.com');
    expect(routeHost('shop.example.com.')).toBe('shop.example.com');
    expect(routeHost('[::1]:443')).toBe('::1');
    expect(routeHost('10.0.0.1')).toBe('10.0.0.1');
    expect(routeHost('evil host')).toBe('');
    expect(routeHost('*.example.com')).toBe('');
    expect(routePath('/a/b?x=1#f')).toBe('/a/b');
    expect(routePath('http://h.example.com/p?q')).toBe('/p');
    expect(routePath('*')).toBe('');
    expect(routePath(`/${'a'.repeat(2000)}`)).toBe('');
  });

  it('builds the RouteRequest spec: SNI before Host, listener port, database and user in the context', () => {
    const { route, context } = routeSpecOf(
      'POSTGRES',
      { database: 'orders', user: 'alice' },
      5432,
      '::ffff:192.0.2.7',
    );
    expect(route).toMatchObject({ protocol: 'POSTGRES', destinationPort: 5432, destinationPattern: '' });
    expect(context).toEqual({ database: 'orders', user: 'alice', client_address: '192.0.2.7' });
    expect(
      routeSpecOf('HTTPS', { sni: 'a.example.com', host: 'b.example.com' }, 443, '').route.destinationPattern,
    ).toBe('a.example.com');
  });
});
