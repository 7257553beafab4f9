/**
 * Property-based fuzzing of the two YAML front doors: the process config loader
 * (services/shared/config.ts loadConfig, with the NLB's and the module controller's schemas) and
 * the simulator's scenario parser (simulator/scenario/load.ts). Arbitrary text, YAML tricks
 * (aliases, tags, flow collections) and mutations of real files must end in a valid result or
 * the documented error with a message: a DomainError (invalid_argument) from loadConfig, a
 * ScenarioError with problems from parseScenario. Replay a failure with the seed the run
 * printed: MP_FUZZ_SEED=<seed> npx vitest run test/unit/fuzz-config.test.ts
 * (docs/hardening.md "Fuzzing").
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { moduleProcessSchema, MODULE_ENV_MAP } from '../../services/modules/runtime/main.js';
import { NLB_ENV_MAP, nlbProcessSchema } from '../../services/nlb/main.js';
import { loadConfig } from '../../services/shared/config.js';
import { parseScenario, ScenarioError } from '../../simulator/scenario/load.js';
import { domainErrorOrNothing, fuzzParams, hostileString, seedLabel, fuzzAssert } from './fuzz-support.js';

const dir = mkdtempSync(join(tmpdir(), 'mp-fuzz-config-'));
const file = join(dir, 'config.yaml');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The yaml package warns on stderr about keys it must stringify ("? [a]: 1"); thousands of
// those would bury the report. Other warnings still go through.
const emitWarning = process.emitWarning.bind(process);
beforeAll(() => {
  process.emitWarning = (w: string | Error, ...rest: never[]) => {
    if (String(w).includes('will be stringified')) return;
    emitWarning(w, ...rest);
  };
});
afterAll(() => {
  process.emitWarning = emitWarning;
});

/** Found by this file: the yaml package throws these from toJS(), past the loaders' checks. */
const YAML_REGRESSIONS = [
  // An alias bomb: 10^4 expansions trip the yaml package's resource-exhaustion guard.
  'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
  // An alias before its anchor.
  'grpc: *x\n',
  '*x',
  // A tagged top level: a Uint8Array, a Set, a Map — not a mapping of keys to values.
  '!!binary AAAA',
  '!!set { a, b }',
  '!!omap [ a: 1 ]',
];

/** Fragments a YAML author (or attacker) writes, to be glued into mostly-YAML text. */
const FRAGMENTS = [
  'grpc:',
  '  port: ',
  '  host: ',
  'admin:',
  'auth:',
  '  adminToken: ',
  'tls:',
  '  requireClientCert: ',
  'listeners:',
  '  - ',
  'logLevel: ',
  'dataDir: ',
  'type: ',
  'version: ',
  'instances: ',
  'name: ',
  'duration: ',
  'modules:',
  '  - type: ALB',
  "    version: '1.0'",
  'faults:',
  '  - kind: crash',
  '    at: ',
  'expect:',
  'load:',
  '&a ',
  '*a',
  '<<: *a',
  '!!binary ',
  '!!int ',
  '!!str ',
  '!!map ',
  '!custom ',
  '? ',
  ': ',
  '[',
  ']',
  '{',
  '}',
  ',',
  '- ',
  '|',
  '>-',
  '"',
  "'",
  '#',
  '---',
  '...',
  '%YAML 1.2',
  '\t',
  '\n',
  '\n  ',
  '0x1F',
  '1e999',
  '-.inf',
  '.nan',
  '~',
  'null',
  'yes',
  '99999999999999999999999',
  '5m',
  '-1',
  '1.5',
  '__proto__: ',
  'constructor: ',
];

const yamlish = fc
  .array(fc.oneof(fc.constantFrom(...FRAGMENTS), fc.string({ maxLength: 8 })), { maxLength: 40 })
  .map((parts) => parts.join(''));

/** JSON-like values with the nasty ones: prototype keys, NaN, huge numbers, deep nesting. */
const valueArb = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53, '', '5m', '1h30m', 'x'),
    hostileString().map((s) => s.slice(0, 200)),
    fc.integer(),
    fc.double({ noNaN: true }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'port', 'host')),
      tie('value'),
      { maxKeys: 5 },
    ),
  ),
})).value;

/** Every leaf path of a parsed document, to aim mutations at. */
function leafPaths(v: unknown, path: (string | number)[] = [], out: (string | number)[][] = []) {
  if (v !== null && typeof v === 'object') {
    for (const [k, child] of Object.entries(v))
      leafPaths(child, [...path, Array.isArray(v) ? Number(k) : k], out);
  }
  out.push(path);
  return out;
}

/** A deep copy of `doc` with the values at some of its paths replaced or removed. */
function mutate(doc: unknown, edits: readonly [number, unknown, boolean][]): unknown {
  const copy = structuredClone(doc);
  const paths = leafPaths(copy).filter((p) => p.length > 0);
  for (const [at, value, remove] of edits) {
    if (!paths.length) break;
    const path = paths[at % paths.length];
    let node = copy as Record<string | number, unknown>;
    for (const k of path.slice(0, -1)) {
      const next = node[k];
      if (next === null || typeof next !== 'object') break;
      node = next as Record<string | number, unknown>;
    }
    const last = path[path.length - 1];
    if (remove) delete node[last];
    else node[last] = value;
  }
  return copy;
}

const editsArb = fc.array(fc.tuple(fc.nat(), valueArb, fc.boolean()), { minLength: 1, maxLength: 5 });

const validNlbConfig = {
  grpc: { host: '127.0.0.1', port: 0 },
  logLevel: 'info',
  auth: { anonymousRead: true },
};
const validModuleConfig = { type: 'alb', version: '1.0', instances: 2, nlb: '127.0.0.1:50050' };

const scenarioDir = new URL('../../simulator/scenarios/', import.meta.url);
const scenarios = readdirSync(scenarioDir)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => ({ name: f, text: readFileSync(new URL(f, scenarioDir), 'utf8') }));

/** loadConfig on `text` as the config file: a config, or an invalid_argument DomainError with a message. */
function loadText(text: string, schema: 'nlb' | 'module', env: Record<string, string> = {}) {
  writeFileSync(file, text);
  return domainErrorOrNothing(() =>
    schema === 'nlb'
      ? loadConfig(nlbProcessSchema, { file, env, envMap: NLB_ENV_MAP })
      : loadConfig(moduleProcessSchema, { file, env, envMap: MODULE_ENV_MAP }),
  );
}

/** parseScenario on `text`: a scenario, or a ScenarioError naming at least one problem. */
function scenarioOutcome(text: string): void {
  try {
    parseScenario(text, join(dir, 'scenario.yaml'));
  } catch (e) {
    if (!(e instanceof ScenarioError)) throw e;
    expect(e.problems.length).toBeGreaterThan(0);
    for (const p of e.problems) expect(p.length).toBeGreaterThan(0);
  }
}

const textArb = fc.oneof(
  yamlish,
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
  valueArb.map((v) => JSON.stringify(v) ?? ''),
  valueArb.map((v) => stringifyYaml(v)),
);

describe(`config and scenario parsers (fast-check) ${seedLabel}`, () => {
  it('loadConfig: arbitrary file text gives a config or a DomainError naming the problem', () => {
    fuzzAssert(
      fc.property(textArb, fc.constantFrom('nlb' as const, 'module' as const), (text, schema) => {
        const e = loadText(text, schema);
        if (e) {
          expect(e.kind).toBe('invalid_argument');
          expect(e.message).toMatch(/^invalid configuration: /);
        }
      }),
      fuzzParams(
        'loadConfig text',
        1200,
        YAML_REGRESSIONS.map((t) => [t, 'nlb' as const]),
      ),
    );
  });

  it('loadConfig: mutated valid configs and hostile env values give a config or a DomainError', () => {
    const envArb = fc.dictionary(
      fc.constantFrom(...Object.keys(NLB_ENV_MAP), ...Object.keys(MODULE_ENV_MAP)),
      hostileString().map((s) => s.slice(0, 300)),
      { maxKeys: 4 },
    );
    fuzzAssert(
      fc.property(fc.boolean(), editsArb, envArb, (nlb, edits, env) => {
        const doc = mutate(nlb ? validNlbConfig : validModuleConfig, edits);
        const e = loadText(stringifyYaml(doc), nlb ? 'nlb' : 'module', env);
        if (e) expect(e.kind).toBe('invalid_argument');
      }),
      fuzzParams('loadConfig mutations', 1000),
    );
    // The unmutated documents are valid: the mutations, not the base, cause the refusals.
    expect(loadText(stringifyYaml(validNlbConfig), 'nlb')).toBeUndefined();
    expect(loadText(stringifyYaml(validModuleConfig), 'module')).toBeUndefined();
  });

  it('parseScenario: arbitrary text gives a scenario or a ScenarioError with problems', () => {
    fuzzAssert(
      fc.property(textArb, (text) => scenarioOutcome(text)),
      fuzzParams(
        'parseScenario text',
        1500,
        YAML_REGRESSIONS.map((t) => [t]),
      ),
    );
  });

  it('parseScenario: mutated shipped scenarios give a scenario or a ScenarioError with problems', () => {
    const parsed = scenarios.map((s) => ({ ...s, doc: parseYaml(s.text) as unknown }));
    for (const s of parsed) expect(() => parseScenario(s.text, join(dir, s.name))).not.toThrow();
    fuzzAssert(
      fc.property(fc.constantFrom(...parsed), editsArb, (s, edits) => {
        scenarioOutcome(stringifyYaml(mutate(s.doc, edits)));
      }),
      fuzzParams('parseScenario mutations', 800),
    );
  });
});
