import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonName, loadRequestSchema } from '../../cli/request-schema.js';
import { REPO_ROOT } from './support/oclif.js';

const schema = loadRequestSchema(join(REPO_ROOT, 'proto'));

describe('request schema', () => {
  it('accepts proto names and JSON names', () => {
    expect(schema.check('marchproxy.GetNLBStatusRequest', { include_modules: true })).toEqual([]);
    expect(schema.check('marchproxy.GetNLBStatusRequest', { includeModules: true })).toEqual([]);
    expect(schema.check('marchproxy.GetNLBStatusRequest', {})).toEqual([]);
  });

  it('names an unknown field and suggests the close one in the style typed', () => {
    expect(schema.check('marchproxy.GetNLBStatusRequest', { includeModule: true })).toEqual([
      'unknown field "includeModule" in marchproxy.GetNLBStatusRequest; did you mean "includeModules"?',
    ]);
  });

  it('lists the known fields when nothing is close', () => {
    expect(schema.check('marchproxy.StreamNLBMetricsRequest', { zzz: 1 })).toEqual([
      'unknown field "zzz" in marchproxy.StreamNLBMetricsRequest; known fields: interval_seconds, metric_names, include_modules',
    ]);
  });

  it('checks nested messages, repeated messages and map values', () => {
    const problems = schema.check('marchproxy.ListModulesRequest', {
      query: { sort_by: 'name', pagination: { page: 1, pageSzie: 10 } },
    });
    expect(problems).toEqual([
      'unknown field "query.pagination.pageSzie" in marchproxy.Pagination; did you mean "pageSize"?',
    ]);
    expect(
      schema.check('marchproxy.UpdateRoutingRequest', { routes: [{ route_id: 'r1' }, { routeIdd: 'r2' }] }),
    ).toEqual(['unknown field "routes[1].routeIdd" in marchproxy.Route; did you mean "routeId"?']);
  });

  it('checks enum values and suggests the full name', () => {
    expect(
      schema.check('marchproxy.ListModulesRequest', { status_filter: 'HEALTH_STATUS_HEALTHYY' }),
    ).toEqual([
      '"status_filter" must be a HealthStatus value, got "HEALTH_STATUS_HEALTHYY"; did you mean "HEALTH_STATUS_HEALTHY"?',
    ]);
    expect(schema.check('marchproxy.ListModulesRequest', { status_filter: 42 })[0]).toMatch(
      /^"status_filter" must be one of HEALTH_STATUS_UNSPECIFIED, HEALTH_STATUS_HEALTHY, .*, got 42$/,
    );
    expect(schema.check('marchproxy.ListModulesRequest', { status_filter: 'HEALTH_STATUS_HEALTHY' })).toEqual(
      [],
    );
    expect(schema.check('marchproxy.ListModulesRequest', { status_filter: 1 })).toEqual([]);
    expect(schema.check('marchproxy.ListModulesRequest', { status_filter: 'HEALTHY' })).toEqual([
      '"status_filter" must be a HealthStatus value, got "HEALTHY"; did you mean "HEALTH_STATUS_HEALTHY"?',
    ]);
  });

  it('checks scalar types instead of letting fromJSON coerce them', () => {
    expect(schema.check('marchproxy.GetNLBStatusRequest', { include_modules: 'false' })).toEqual([
      '"include_modules" must be true or false, got "false"',
    ]);
    expect(schema.check('marchproxy.StreamNLBMetricsRequest', { interval_seconds: '5' })).toEqual([]);
    expect(schema.check('marchproxy.StreamNLBMetricsRequest', { interval_seconds: 1.5 })).toEqual([
      '"interval_seconds" must be an integer, got 1.5',
    ]);
    expect(schema.check('marchproxy.StreamNLBMetricsRequest', { metric_names: 'cpu' })).toEqual([
      '"metric_names" must be a JSON array, got a string',
    ]);
  });

  it('accepts null for any field and checks timestamps', () => {
    expect(schema.check('marchproxy.GetNLBStatusRequest', { include_modules: null })).toEqual([]);
    expect(schema.check('marchproxy.ReportMetricsRequest', { reported_at: '2024-05-01T12:00:00Z' })).toEqual(
      [],
    );
    const problems = schema.check('marchproxy.ReportMetricsRequest', {
      metrics: { metrics: [{ name: 'cpu', timestamp: 'yesterday' }] },
    });
    expect(problems).toEqual([
      '"metrics.metrics[0].timestamp" must be an RFC 3339 timestamp such as "2024-05-01T12:00:00Z", got "yesterday"',
    ]);
  });

  it('wants an object at the top', () => {
    expect(schema.check('marchproxy.GetNLBStatusRequest', [])).toEqual([
      'the request must be a JSON object, got an array',
    ]);
  });

  it('derives JSON names like protobuf', () => {
    expect(jsonName('interval_seconds')).toBe('intervalSeconds');
    expect(jsonName('ipv4_addr_2')).toBe('ipv4Addr2');
  });
});

describe('request schema, maps', () => {
  it('checks each map value against the value type', () => {
    expect(schema.check('marchproxy.RegisterModuleRequest', { capabilities: { gpu: 'yes' } })).toEqual([]);
    expect(schema.check('marchproxy.RegisterModuleRequest', { capabilities: { gpu: 1 } })).toEqual([
      '"capabilities.gpu" must be a string, got 1',
    ]);
    expect(schema.check('marchproxy.RegisterModuleRequest', { capabilities: ['gpu'] })).toEqual([
      '"capabilities" must be a JSON object (a map), got an array',
    ]);
  });
});
