import { describe, expect, it } from 'vitest';
import {
  defaultNlbConfig,
  parseSection,
  SECTION_NAMES,
  sectionName,
  type SectionName,
} from '../../services/nlb/domain/nlb-config.js';
import { domainError } from './nlb-fixtures.js';

/** The problem lines of a refused section. */
function problems(section: SectionName, body: unknown): string[] {
  const e = domainError(() => parseSection(section, body));
  expect(e.kind).toBe('invalid_argument');
  expect(e.message).toMatch(new RegExp(`^invalid config section ${section}: `));
  return e.details.problems.split('\n');
}

describe('defaultNlbConfig', () => {
  it('parses every section from its embedded defaults', () => {
    const c = defaultNlbConfig();
    expect(Object.keys(c)).toEqual(SECTION_NAMES);
    expect(SECTION_NAMES).toEqual([
      'listeners',
      'heartbeat',
      'scaling',
      'rollout',
      'routing',
      'metrics',
      'auth',
      'limits',
      'server',
    ]);
    expect(c.heartbeat).toEqual({
      intervalSeconds: 10,
      missedHeartbeats: 3,
      evictAfterSeconds: 300,
      drainTimeoutSeconds: 30,
    });
    expect(c.rollout.steps).toEqual([5, 25, 50, 100]);
    expect(c.routing).toEqual({
      canHandleTimeoutMs: 500,
      canHandleCacheTtlMs: 30_000,
      strategy: 'least-conn',
    });
    expect(c.scaling).toMatchObject({
      evaluationIntervalSeconds: 30,
      stabilizationWindowSeconds: 300,
      tolerance: 0.1,
      overrides: {},
      defaults: { minInstances: 1, maxInstances: 10, targetConnections: 1000, autoScalingEnabled: true },
    });
    expect(c.listeners).toEqual({ listeners: [] });
    expect(c.auth).toEqual({ anonymousRead: false });
    expect(c.server.grpcAddress).toBe('0.0.0.0:50050');
  });

  it('returns a fresh object each time', () => {
    const a = defaultNlbConfig();
    a.rollout.steps.push(1);
    expect(defaultNlbConfig().rollout.steps).toEqual([5, 25, 50, 100]);
  });
});

describe('parseSection', () => {
  it('fills omitted fields with defaults and says whether a restart is needed', () => {
    expect(parseSection('heartbeat', { intervalSeconds: 5 })).toEqual({
      section: 'heartbeat',
      value: { intervalSeconds: 5, missedHeartbeats: 3, evictAfterSeconds: 300, drainTimeoutSeconds: 30 },
      requiresRestart: false,
    });
    expect(parseSection('server', undefined).requiresRestart).toBe(true);
    expect(parseSection('routing', { strategy: 'round-robin' }).value).toMatchObject({
      strategy: 'round-robin',
    });
  });

  it('fills listener defaults', () => {
    const v = parseSection('listeners', { listeners: [{ name: 'web', port: 8080, mode: 'http' }] }).value;
    expect(v).toEqual({
      listeners: [
        {
          name: 'web',
          address: '0.0.0.0',
          port: 8080,
          mode: 'http',
          defaultProtocol: 'none',
          sniffBytes: 4096,
          sniffTimeoutMs: 1000,
          maxConnections: 0,
          maxConnectionsPerClient: 0,
          idleTimeoutMs: 300_000,
        },
      ],
    });
  });

  it.each<[string, SectionName, unknown, string[]]>([
    [
      'an unknown top-level field',
      'heartbeat',
      { intervalSecond: 5 },
      ['heartbeat: unknown field "intervalSecond"'],
    ],
    [
      'an unknown nested field',
      'scaling',
      { defaults: { foo: 1 } },
      ['scaling.defaults: unknown field "foo"'],
    ],
    [
      'a value below its minimum',
      'heartbeat',
      { intervalSeconds: 0 },
      ['heartbeat.intervalSeconds: Too small: expected number to be >=0.1'],
    ],
    [
      'a non-integer',
      'heartbeat',
      { missedHeartbeats: 1.5 },
      ['heartbeat.missedHeartbeats: Invalid input: expected int, received number'],
    ],
    [
      'a wrong type',
      'auth',
      { anonymousRead: 'yes' },
      ['auth.anonymousRead: Invalid input: expected boolean, received string'],
    ],
    [
      'an unknown enum value',
      'routing',
      { strategy: 'random' },
      ['routing.strategy: Invalid option: expected one of "least-conn"|"round-robin"'],
    ],
    [
      'a bad listener name inside an array',
      'listeners',
      { listeners: [{ name: 'Web!', port: 80 }] },
      ['listeners.listeners.0.name: use 1-32 lowercase letters, digits or -'],
    ],
    [
      'a port out of range',
      'listeners',
      { listeners: [{ name: 'a', port: 70000 }] },
      ['listeners.listeners.0.port: Too big: expected number to be <=65535'],
    ],
    [
      'min > max',
      'scaling',
      { defaults: { minInstances: 5, maxInstances: 2 } },
      ['scaling.defaults: minInstances must not exceed maxInstances'],
    ],
    [
      'min > max in an override',
      'scaling',
      { overrides: { 'ALB@2.0': { minInstances: 5, maxInstances: 2 } } },
      ['scaling.overrides.ALB@2.0: minInstances must not exceed maxInstances'],
    ],
    [
      'steps that do not end at 100',
      'rollout',
      { steps: [5, 50] },
      ['rollout.steps: steps must increase and end at 100'],
    ],
    [
      'steps that do not increase',
      'rollout',
      { steps: [50, 25, 100] },
      ['rollout.steps: steps must increase and end at 100'],
    ],
    [
      'a zero step',
      'rollout',
      { steps: [0, 100] },
      ['rollout.steps.0: Too small: expected number to be >=1'],
    ],
    [
      'eviction sooner than the unhealthy threshold',
      'heartbeat',
      { intervalSeconds: 100, evictAfterSeconds: 200 },
      ['heartbeat: evictAfterSeconds must be at least intervalSeconds × missedHeartbeats'],
    ],
    [
      'duplicate listener names',
      'listeners',
      {
        listeners: [
          { name: 'a', port: 80 },
          { name: 'a', port: 81 },
        ],
      },
      ['listeners: listener names must be unique'],
    ],
    [
      'two listeners on one address and port',
      'listeners',
      {
        listeners: [
          { name: 'a', port: 80 },
          { name: 'b', port: 80 },
        ],
      },
      ['listeners: two listeners use the same address and port'],
    ],
  ])('refuses %s, naming section.path', (_label, section, body, expected) => {
    expect(problems(section, body)).toEqual(expected);
  });

  it('names every problem in one error', () => {
    const lines = problems('heartbeat', { intervalSeconds: -1, missedHeartbeats: 0, bogus: true });
    expect(lines).toHaveLength(3);
    expect(lines).toContain('heartbeat: unknown field "bogus"');
    expect(lines.some((l) => l.startsWith('heartbeat.intervalSeconds: '))).toBe(true);
    expect(lines.some((l) => l.startsWith('heartbeat.missedHeartbeats: '))).toBe(true);
  });

  it('accepts an override key with or without a version and refuses others', () => {
    const v = parseSection('scaling', { overrides: { ALB: {}, 'DBLB@1.2.3': { maxInstances: 3 } } }).value;
    expect(v).toMatchObject({ overrides: { ALB: { minInstances: 1 }, 'DBLB@1.2.3': { maxInstances: 3 } } });
    expect(problems('scaling', { overrides: { XLB: {} } })).toEqual([
      'scaling.overrides.XLB: Invalid key in record',
    ]);
  });
});

describe('sectionName', () => {
  it.each([
    ['heartbeat', 'heartbeat'],
    ['HeartBeat', 'heartbeat'],
    ['  routing ', 'routing'],
  ])('resolves %j to %s', (input, expected) => {
    expect(sectionName(input)).toBe(expected);
  });

  it.each([
    ['heartbeet', ' (did you mean heartbeat?)'],
    ['listener', ' (did you mean listeners?)'],
    ['xyzzy', ''],
  ])('refuses %j with the list of sections%s', (input, hint) => {
    const e = domainError(() => sectionName(input));
    expect(e.kind).toBe('invalid_argument');
    expect(e.message).toBe(
      `unknown config_type "${input}"; use one of listeners, heartbeat, scaling, rollout, routing, metrics, auth, limits, server${hint}`,
    );
  });
});
