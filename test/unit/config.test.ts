import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { deepMerge, durationMs, loadConfig, parseDuration } from '../../services/shared/config.js';
import { DomainError } from '../../services/shared/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'mp-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function writeFile(text: string, ext = 'yaml'): string {
  const path = join(dir, `config-${++fileCount}.${ext}`);
  writeFileSync(path, text);
  return path;
}

const schema = z.object({
  grpc: z
    .object({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(1).max(65535).default(7000),
    })
    .prefault({}),
  logLevel: z.enum(['debug', 'info', 'warn']).default('info'),
  tls: z.boolean().default(false),
  tags: z.array(z.string()).default([]),
  weights: z.array(z.number()).default([]),
  heartbeatTtlMs: durationMs().default(30_000),
  tenants: z.record(z.string(), z.number()).default({}),
  mode: z.union([z.literal('auto'), z.number()]).default('auto'),
  token: z.string().optional(),
});

/** Runs loadConfig expecting failure; returns the problem list. */
function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(DomainError);
    const err = e as DomainError;
    expect(err.kind).toBe('invalid_argument');
    expect(err.message).toMatch(/^invalid configuration: /);
    return (err.details.problems ?? '').split('\n');
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig precedence', () => {
  it('uses schema defaults when nothing else is given', () => {
    expect(loadConfig(schema)).toEqual({
      grpc: { host: '0.0.0.0', port: 7000 },
      logLevel: 'info',
      tls: false,
      tags: [],
      weights: [],
      heartbeatTtlMs: 30_000,
      tenants: {},
      mode: 'auto',
    });
  });

  it('puts base (what --local-stack reads) under the file, the environment and the flags', () => {
    const base = { token: 'from-stack', 'grpc.host': 'stack-host', 'grpc.port': 1, logLevel: 'debug' };
    expect(loadConfig(schema, { base })).toMatchObject({
      token: 'from-stack',
      grpc: { host: 'stack-host', port: 1 },
      logLevel: 'debug',
    });
    const file = writeFile('grpc:\n  host: file-host\n');
    const c = loadConfig(schema, {
      base,
      file,
      env: { MP_TOKEN: 'from-env' },
      envMap: { MP_TOKEN: 'token' },
      flags: { 'grpc.port': 3000 },
    });
    expect(c).toMatchObject({
      token: 'from-env',
      grpc: { host: 'file-host', port: 3000 },
      logLevel: 'debug',
    });
  });

  it('applies defaults < file < env < flags, key by key', () => {
    const file = writeFile('grpc:\n  host: file-host\n  port: 1000\nlogLevel: debug\ntls: true\n');
    const env = { MP_PORT: '2000', MP_LOG: 'warn' };
    const envMap = { MP_PORT: 'grpc.port', MP_LOG: 'logLevel' };

    const fileOnly = loadConfig(schema, { file });
    expect(fileOnly.grpc).toEqual({ host: 'file-host', port: 1000 });
    expect(fileOnly.logLevel).toBe('debug');

    const withEnv = loadConfig(schema, { file, env, envMap });
    expect(withEnv.grpc).toEqual({ host: 'file-host', port: 2000 });
    expect(withEnv.logLevel).toBe('warn');

    const withFlags = loadConfig(schema, {
      file,
      env,
      envMap,
      flags: { 'grpc.port': 3000, logLevel: undefined, tls: false },
    });
    expect(withFlags.grpc).toEqual({ host: 'file-host', port: 3000 });
    expect(withFlags.logLevel).toBe('warn'); // an undefined flag is "not given"
    expect(withFlags.tls).toBe(false); // a false flag is given, and beats the file's true
    expect(withFlags.heartbeatTtlMs).toBe(30_000);
  });

  it('reads JSON files too', () => {
    const file = writeFile(JSON.stringify({ grpc: { port: 9000 }, tags: ['a'] }), 'json');
    const config = loadConfig(schema, { file });
    expect(config.grpc.port).toBe(9000);
    expect(config.tags).toEqual(['a']);
  });

  it('treats an empty file as no settings', () => {
    expect(loadConfig(schema, { file: writeFile('') }).grpc.port).toBe(7000);
  });

  it('reads defaultFile when present, ignores it when absent, and prefers an explicit file', () => {
    const fallback = writeFile('grpc:\n  port: 1111\n');
    const explicit = writeFile('grpc:\n  port: 2222\n');
    expect(loadConfig(schema, { defaultFile: fallback }).grpc.port).toBe(1111);
    expect(loadConfig(schema, { defaultFile: join(dir, 'absent.yaml') }).grpc.port).toBe(7000);
    expect(loadConfig(schema, { file: explicit, defaultFile: fallback }).grpc.port).toBe(2222);
  });
});

describe('loadConfig coercion of env and string flags', () => {
  const envMap = {
    MP_PORT: 'grpc.port',
    MP_TLS: 'tls',
    MP_TAGS: 'tags',
    MP_WEIGHTS: 'weights',
    MP_TTL: 'heartbeatTtlMs',
    MP_TENANTS: 'tenants',
    MP_MODE: 'mode',
    MP_HOST: 'grpc.host',
  };

  it('converts strings by the target field type', () => {
    const config = loadConfig(schema, {
      envMap,
      env: {
        MP_PORT: ' 8080 ',
        MP_TLS: 'YES',
        MP_TAGS: 'edge, blue ,,',
        MP_WEIGHTS: '10,20,70',
        MP_TTL: '1m30s',
        MP_TENANTS: '{"acme": 3}',
        MP_HOST: '127.0.0.1',
      },
    });
    expect(config.grpc).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.tls).toBe(true);
    expect(config.tags).toEqual(['edge', 'blue']);
    expect(config.weights).toEqual([10, 20, 70]);
    expect(config.heartbeatTtlMs).toBe(90_000);
    expect(config.tenants).toEqual({ acme: 3 });
  });

  it.each([
    ['true', true],
    ['1', true],
    ['on', undefined],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('reads boolean %s as %s', (raw, expected) => {
    const run = () => loadConfig(schema, { env: { MP_TLS: raw }, envMap });
    if (expected === undefined)
      expect(problemsOf(run)).toEqual(['env MP_TLS (tls): expected true/false, 1/0 or yes/no']);
    else expect(run().tls).toBe(expected);
  });

  it('accepts JSON arrays, and picks the number form of a union only when the text is a number', () => {
    expect(loadConfig(schema, { env: { MP_WEIGHTS: '[1, 2]' }, envMap }).weights).toEqual([1, 2]);
    expect(loadConfig(schema, { env: { MP_MODE: '42' }, envMap }).mode).toBe(42);
    expect(loadConfig(schema, { env: { MP_MODE: 'auto' }, envMap }).mode).toBe('auto');
  });

  it('treats empty environment values as unset', () => {
    expect(loadConfig(schema, { env: { MP_PORT: '', MP_TLS: '' }, envMap }).grpc.port).toBe(7000);
  });

  it('coerces string flags the same way and passes typed flags through', () => {
    const config = loadConfig(schema, { flags: { 'grpc.port': '9090', tls: 'true', weights: [5] } });
    expect(config.grpc.port).toBe(9090);
    expect(config.tls).toBe(true);
    expect(config.weights).toEqual([5]);
  });
});

describe('loadConfig errors', () => {
  it('reports every problem at once, each naming where the value came from, without echoing it', () => {
    const file = writeFile('grpc:\n  host: h\n  port: 99999\nlogLevel: loud\n');
    const problems = problemsOf(() =>
      loadConfig(schema, {
        file,
        env: { MP_TLS: 'sometimes', MP_WEIGHTS: '1,x' },
        envMap: { MP_TLS: 'tls', MP_WEIGHTS: 'weights' },
        flags: { 'grpc.host': 42, heartbeatTtlMs: '10 parsecs' },
      }),
    );
    expect(problems).toEqual([
      'env MP_TLS (tls): expected true/false, 1/0 or yes/no',
      'env MP_WEIGHTS (weights): expected a comma-separated list of a number',
      'flag grpc.host: expected string, received number',
      `file ${file} line 3, grpc.port: Too big: expected number to be <=65535`,
      `file ${file} line 4, logLevel: Invalid option: expected one of "debug"|"info"|"warn"`,
      'flag heartbeatTtlMs: invalid duration "10 parsecs": use a number with a unit (ms, s, m, h, d), e.g. "250ms", "30s", "5m", "1h30m"',
    ]);
    expect(problems.join('\n')).not.toContain('sometimes');
  });

  it('puts a one-problem summary in the message itself', () => {
    expect(() => loadConfig(schema, { flags: { 'grpc.port': 0 } })).toThrow(
      'invalid configuration: flag grpc.port: Too small: expected number to be >=1',
    );
  });

  it('names unknown file keys with their line and suggests the closest known key', () => {
    const file = writeFile('grpc:\n  prot: 8080\nloglevel: debug\nzzz: 1\n');
    expect(problemsOf(() => loadConfig(schema, { file }))).toEqual([
      `file ${file} line 2: unknown key "grpc.prot" (did you mean "grpc.port"?)`,
      `file ${file} line 3: unknown key "loglevel" (did you mean "logLevel"?)`,
      `file ${file} line 4: unknown key "zzz"`,
    ]);
  });

  it('allows any key in records and loose objects, and checks keys inside arrays of objects', () => {
    const loose = z.object({
      labels: z.looseObject({ team: z.string().optional() }),
      backends: z.array(z.object({ host: z.string() })),
    });
    const file = writeFile('labels:\n  anything: 1\nbackends:\n  - host: a\n  - hots: b\n');
    expect(problemsOf(() => loadConfig(loose, { file }))).toEqual([
      `file ${file} line 5: unknown key "backends[1].hots" (did you mean "backends[1].host"?)`,
    ]);
    expect(loadConfig(schema, { file: writeFile('tenants:\n  acme: 1\n  globex: 2\n') }).tenants).toEqual({
      acme: 1,
      globex: 2,
    });
  });

  it('rejects flags and env mappings that point at unknown keys, even when the variable is unset', () => {
    expect(
      problemsOf(() => loadConfig(schema, { envMap: { MP_X: 'grpc.hots' }, flags: { 'grcp.port': 1 } })),
    ).toEqual([
      'envMap MP_X: unknown config key "grpc.hots" (did you mean "grpc.host"?)',
      'flag grcp.port: unknown config key "grcp.port" (did you mean "grpc"?)',
    ]);
  });

  it('says which sources can set a required value that nobody set', () => {
    const required = z.object({ auth: z.object({ token: z.string() }), name: z.string() });
    expect(problemsOf(() => loadConfig(required, { envMap: { MP_TOKEN: 'auth.token' } }))).toEqual([
      'auth: required but not set (set it in the config file or env MP_TOKEN)',
      'name: required but not set (set it in the config file)',
    ]);
    const file = writeFile('auth:\n  user: x\nname: n\n');
    expect(problemsOf(() => loadConfig(required, { file, envMap: { MP_TOKEN: 'auth.token' } }))).toEqual([
      `file ${file} line 2: unknown key "auth.user"`,
      'auth.token: required but not set (set it in the config file or env MP_TOKEN)',
    ]);
  });

  it('names every contributing source for object-level rules', () => {
    const ranged = z.object({
      replicas: z
        .object({ min: z.number(), max: z.number() })
        .refine((r) => r.min <= r.max, 'min must be <= max'),
    });
    const file = writeFile('# replicas\nreplicas:\n  min: 5\n  max: 10\n');
    expect(
      problemsOf(() =>
        loadConfig(ranged, { file, env: { MP_MAX: '3' }, envMap: { MP_MAX: 'replicas.max' } }),
      ),
    ).toEqual([`replicas: min must be <= max (from file ${file} line 2; env MP_MAX (replicas.max))`]);
  });

  it('reports a missing named file, a YAML syntax error with its line, and a non-mapping file', () => {
    const absent = join(dir, 'nope.yaml');
    expect(problemsOf(() => loadConfig(schema, { file: absent }))).toEqual([`file ${absent}: not found`]);

    const misindented = writeFile('grpc:\n  port: 1\n host: h\n');
    expect(problemsOf(() => loadConfig(schema, { file: misindented }))).toEqual([
      `file ${misindented} line 3, column 1: All mapping items must start at the same column`,
    ]);
    const unterminated = writeFile('grpc:\n  host: "unterminated\n');
    const [syntax] = problemsOf(() => loadConfig(schema, { file: unterminated }));
    expect(syntax).toMatch(/ line \d+, column \d+: Missing closing "quote$/);

    const duplicate = writeFile('tls: true\ntls: false\n');
    expect(problemsOf(() => loadConfig(schema, { file: duplicate }))).toEqual([
      `file ${duplicate} line 2, column 1: Map keys must be unique`,
    ]);

    const list = writeFile('- a\n- b\n');
    expect(problemsOf(() => loadConfig(schema, { file: list }))).toEqual([
      `file ${list}: the top level must be a mapping of keys to values`,
    ]);
  });
});

describe('deepMerge', () => {
  it('merges objects recursively, replaces arrays and scalars, and leaves inputs alone', () => {
    const base = { a: { b: 1, c: [1, 2] }, d: 'x' };
    const over = { a: { c: [3] }, d: 'y', e: true };
    expect(deepMerge(base, over)).toEqual({ a: { b: 1, c: [3] }, d: 'y', e: true });
    expect(base).toEqual({ a: { b: 1, c: [1, 2] }, d: 'x' });
  });

  it('keeps a "__proto__" key as data instead of changing prototypes', () => {
    const merged = deepMerge({}, JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>);
    expect(Object.keys(merged)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((merged as { polluted?: unknown }).polluted).toBeUndefined();
  });
});

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1_500],
    [' 10s ', 10_000],
    ['0', 0],
    [1234, 1234],
    [0, 0],
  ] as const)('parses %j as %d ms', (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  it.each([
    ['30', 'invalid duration "30": missing a unit;'],
    ['', 'invalid duration "": use a number with a unit'],
    ['5 m', 'invalid duration "5 m": use a number with a unit'],
    ['-5s', 'invalid duration "-5s"'],
    ['1h30', 'invalid duration "1h30"'],
    ['10y', 'invalid duration "10y"'],
    [-1, 'invalid duration -1: expected a non-negative number of milliseconds'],
    [Number.NaN, 'invalid duration NaN'],
  ] as const)('rejects %j', (input, message) => {
    expect(() => parseDuration(input)).toThrow(message);
    try {
      parseDuration(input);
    } catch (e) {
      expect((e as DomainError).kind).toBe('invalid_argument');
    }
  });

  it('works as a schema field from a file number or an env string', () => {
    const s = z.object({ ttlMs: durationMs() });
    expect(loadConfig(s, { file: writeFile('ttlMs: 1500\n') }).ttlMs).toBe(1500);
    expect(loadConfig(s, { env: { TTL: '2s' }, envMap: { TTL: 'ttlMs' } }).ttlMs).toBe(2000);
    expect(loadConfig(s, { env: { TTL: '2000' }, envMap: { TTL: 'ttlMs' } }).ttlMs).toBe(2000);
  });
});
