/**
 * Property-based fuzzing of every request validator: the NLB domain checks
 * (services/nlb/domain/validate.ts), route matching (routes.ts, shared/glob.ts), and every
 * unary RPC handler of NLBService and ModuleService fed hostile requests. A request of any shape
 * the wire can carry must end in a response or a DomainError (an INVALID_ARGUMENT-like status or
 * envelope), never in an unexpected exception, which the edge turns into INTERNAL and logs as a
 * bug. Replay a failure with the seed the run printed: MP_FUZZ_SEED=<seed> npx vitest run
 * test/unit/fuzz-validators.test.ts (docs/hardening.md "Fuzzing").
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as moduleGen from '../../proto/gen/marchproxy/module.js';
import * as nlbGen from '../../proto/gen/marchproxy/nlb.js';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { globMatch } from '../../services/modules/common/patterns.js';
import { createControllerMemoryStore } from '../../services/modules/runtime/controller-state.js';
import { ModuleController } from '../../services/modules/runtime/controller.js';
import { ModuleMetricsSampler } from '../../services/modules/runtime/module-metrics.js';
import { createModuleService } from '../../services/modules/runtime/module-service.js';
import type { NlbApi } from '../../services/modules/runtime/nlb-api.js';
import type { InstanceProvider } from '../../services/modules/runtime/providers/provider.js';
import { Nlb } from '../../services/nlb/nlb.js';
import { RoutingService } from '../../services/nlb/nlb-routing.js';
import { createMemoryStatePort } from '../../services/nlb/store.js';
import { pathMatches, routeMatches } from '../../services/nlb/domain/routes.js';
import {
  MODULE_TYPES,
  PROTOCOLS,
  type InstanceSpec,
  type RouteSpec,
} from '../../services/nlb/domain/types.js';
import {
  checkAddress,
  checkId,
  checkVersion,
  checkWeight,
  parseHostPort,
  validateInstanceSpec,
  validateRoute,
} from '../../services/nlb/domain/validate.js';
import { createNlbService } from '../../services/nlb/transport/nlb-service.js';
import { createManualClock } from '../../services/shared/clock.js';
import { Problems } from '../../services/shared/errors.js';
import { marchproxyPackageDefinition } from '../../services/shared/grpc/proto-package.js';
import { memoryLogger } from '../../services/shared/logger.js';
import { createRng } from '../../services/shared/rng.js';
import {
  domainErrorOrNothing,
  fuzzParams,
  hostileNumber,
  hostileString,
  seedLabel,
  fuzzAssert,
} from './fuzz-support.js';
import { spec } from './nlb-fixtures.js';

/** Values that are valid somewhere, so that hostile requests also reach the deeper checks. */
const KNOWN = [
  'alb-1',
  'ALB',
  'alb',
  '1.0',
  '2.0',
  '127.0.0.1:50051',
  '[::1]:8080',
  'example.com',
  '*.example.com',
  '/api/*',
  'module',
  'limits',
  'scaling',
  'routing',
  'heartbeat',
  'instance_id',
  'status',
  'route_id',
  'eq',
  'contains',
  '{}',
];

// ---- domain validators ----

const routeArb: fc.Arbitrary<RouteSpec> = fc.record({
  routeId: hostileString(KNOWN),
  protocol: fc.option(fc.constantFrom(...PROTOCOLS), { nil: null }),
  sourcePattern: hostileString(['10.0.0.0/8', '::1', '1.2.3.4/33', '*']),
  destinationPattern: hostileString(KNOWN),
  sourcePort: hostileNumber('double'),
  destinationPort: hostileNumber('double'),
  headers: fc.dictionary(hostileString(['Host', 'x-a']), hostileString(['*']), { maxKeys: 70 }),
  pathPattern: hostileString(['/', '/a/*', '/*a*', '*']),
  priority: hostileNumber('double'),
  metadata: fc.dictionary(hostileString(['module_type']), hostileString([...MODULE_TYPES, 'alb', 'NLB'])),
});

const label = /^[a-z0-9]{1,12}$/;
const hostName = fc
  .array(fc.stringMatching(label), { minLength: 1, maxLength: 4 })
  .map((parts) => parts.join('.'));
const validAddress = fc.oneof(
  fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`),
  fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `[${h}]:${p}`),
  fc.tuple(hostName, fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`),
);
const validId = fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/);
const validVersion = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/);
const smallMap = (key: fc.Arbitrary<string>) =>
  fc.dictionary(key, fc.string({ maxLength: 100 }), { maxKeys: 10 });

const validRouteArb: fc.Arbitrary<RouteSpec> = fc.record({
  routeId: fc.oneof(fc.constant(''), validId),
  protocol: fc.option(fc.constantFrom(...PROTOCOLS), { nil: null }),
  sourcePattern: fc.oneof(
    fc.constant(''),
    fc.ipV4(),
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, b]) => `${a}/${b}`),
    fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, b]) => `${a}/${b}`),
  ),
  destinationPattern: fc.oneof(
    fc.constantFrom('', '*'),
    hostName,
    hostName.map((h) => `*.${h}`),
    fc.ipV4(),
  ),
  sourcePort: fc.integer({ min: 0, max: 65535 }),
  destinationPort: fc.integer({ min: 0, max: 65535 }),
  headers: smallMap(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/)),
  pathPattern: fc.oneof(fc.constant(''), fc.stringMatching(/^\/[!-~]{0,50}$/)),
  priority: fc.integer({ min: -1_000_000, max: 1_000_000 }),
  metadata: fc.oneof(
    smallMap(fc.stringMatching(/^[a-z_]{1,20}$/)).filter((m) => !('module_type' in m)),
    fc.constantFrom(...MODULE_TYPES).map((t) => ({ module_type: t.toLowerCase() })),
  ),
});

const instanceArb: fc.Arbitrary<InstanceSpec> = fc.record({
  instanceId: hostileString(KNOWN),
  moduleType: fc.constantFrom(...MODULE_TYPES),
  address: hostileString(KNOWN),
  trafficAddress: hostileString(KNOWN),
  version: hostileString(KNOWN),
  maxConnections: hostileNumber('double'),
  metadata: fc.dictionary(hostileString(), hostileString(), { maxKeys: 70 }),
  protocols: fc.array(fc.constantFrom(...PROTOCOLS), { maxLength: 3 }),
  proxyProtocol: fc.constantFrom('none' as const, 'v2' as const),
  startedAtMs: hostileNumber('double'),
  capabilities: fc.dictionary(hostileString(), hostileString(), { maxKeys: 5 }),
});

const validInstanceArb: fc.Arbitrary<InstanceSpec> = fc.record({
  instanceId: validId,
  moduleType: fc.constantFrom(...MODULE_TYPES),
  address: validAddress,
  trafficAddress: fc.oneof(fc.constant(''), validAddress),
  version: validVersion,
  maxConnections: fc.integer({ min: 0, max: 10_000_000 }),
  metadata: smallMap(fc.string({ minLength: 1, maxLength: 20 })),
  protocols: fc.array(fc.constantFrom(...PROTOCOLS), { maxLength: 3 }),
  proxyProtocol: fc.constantFrom('none' as const, 'v2' as const),
  startedAtMs: fc.nat(),
  capabilities: smallMap(fc.string({ minLength: 1, maxLength: 20 })),
});

/** Runs a Problems-based validator and checks it ends in nothing or an invalid_argument DomainError. */
function validated(fn: (p: Problems) => void): string[] {
  const p = new Problems();
  fn(p);
  const e = domainErrorOrNothing(() => p.check('request'));
  if (e) expect(e.kind).toBe('invalid_argument');
  for (const problem of p.list) expect(problem.length).toBeGreaterThan(0);
  return p.list;
}

/** The RegExp the glob matchers used to build: the reference for patterns with few stars. */
function regexGlob(pattern: string, value: string, flags = ''): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^]*')}$`,
    flags,
  );
  return re.test(value);
}

/** Found by this file: a 26-character pattern took over a minute against a 40-character path. */
const CATASTROPHIC_PATTERN = `/${'*a'.repeat(12)}b`;
const CATASTROPHIC_PATH = `/${'a'.repeat(40)}`;

describe(`request validators (fast-check) ${seedLabel}`, () => {
  it('validateRoute: hostile routes give problems or pass, never anything else', () => {
    fuzzAssert(
      fc.property(routeArb, (r) => {
        validated((p) => validateRoute(p, r, 'routes[0]'));
      }),
      fuzzParams('validateRoute hostile', 2000),
    );
  });

  it('validateRoute: valid routes are accepted', () => {
    fuzzAssert(
      fc.property(validRouteArb, (r) => {
        expect(validated((p) => validateRoute(p, r, 'route'))).toEqual([]);
      }),
      fuzzParams('validateRoute valid', 3000),
    );
  });

  it('validateInstanceSpec: hostile specs give problems or pass; valid specs are accepted', () => {
    fuzzAssert(
      fc.property(instanceArb, validInstanceArb, (hostile, valid) => {
        validated((p) => validateInstanceSpec(p, hostile));
        expect(validated((p) => validateInstanceSpec(p, valid))).toEqual([]);
      }),
      fuzzParams('validateInstanceSpec', 2000),
    );
  });

  it('field checks and parseHostPort never throw and accept their valid forms', () => {
    fuzzAssert(
      fc.property(hostileString(KNOWN), hostileNumber('double'), validAddress, (s, n, address) => {
        validated((p) => {
          checkId(p, 'id', s);
          checkVersion(p, 'version', s);
          checkWeight(p, 'weight', n);
          checkAddress(p, 'address', s, true);
        });
        const hp = parseHostPort(s);
        if (hp) expect(hp.port >= 1 && hp.port <= 65535).toBe(true);
        expect(parseHostPort(address)).not.toBeNull();
      }),
      fuzzParams('field checks', 3000),
    );
  });

  it('glob path matching agrees with the RegExp it replaced, and stays fast with many stars', () => {
    const alphabet = fc.constantFrom(...'ab/*.?+(É\u00e9\n');
    const pattern = fc.string({ unit: alphabet, maxLength: 12 });
    const text = fc.string({ unit: fc.constantFrom(...'ab/.?+(É\u00e9\n'), maxLength: 16 });
    fuzzAssert(
      fc.property(pattern, text, (pat, value) => {
        const p = `/${pat}`;
        const v = `/${value}`;
        const expected =
          p === '/*' ? true : !p.includes('*') ? (v.split('?')[0] || '/') === p : pathMatchesRef(p, v);
        expect(pathMatches(p, v)).toBe(expected);
        expect(globMatch(pat, value)).toBe(!pat || pat === '*' ? true : regexGlob(pat, value, 'i'));
      }),
      fuzzParams('glob vs RegExp', 5000, [['*a'.repeat(6) + 'b', 'a'.repeat(30)]]),
    );
    // The regression: with the RegExp this call did not return for over a minute.
    expect(pathMatches(CATASTROPHIC_PATTERN, CATASTROPHIC_PATH)).toBe(false);
    expect(globMatch(CATASTROPHIC_PATTERN, CATASTROPHIC_PATH)).toBe(false);
  });

  it('routeMatches never throws on hostile routes and requests', () => {
    const factsArb = fc.record({
      protocol: fc.option(fc.constantFrom(...PROTOCOLS), { nil: null }),
      host: hostileString(KNOWN),
      destinationPort: hostileNumber('int32'),
      path: hostileString(['/', '/api/x']),
      headers: fc.dictionary(hostileString(['host']), hostileString()),
      sourceAddress: hostileString(['10.1.2.3', '::ffff:10.1.2.3']),
      sourcePort: hostileNumber('int32'),
    });
    fuzzAssert(
      fc.property(routeArb, factsArb, (r, f) => {
        expect(typeof routeMatches(r, f)).toBe('boolean');
      }),
      fuzzParams('routeMatches', 3000),
    );
  });
});

/** pathMatches' semantics for a pattern with stars: the query is dropped, "/a/*" also matches "/a". */
function pathMatchesRef(pattern: string, path: string): boolean {
  const p = path.split('?')[0] || '/';
  if (pattern.endsWith('/*') && !pattern.slice(0, -2).includes('*') && p === pattern.slice(0, -2))
    return true;
  return regexGlob(pattern, p);
}

// ---- RPC handlers, driven by the contract's descriptors ----

interface FieldDescriptor {
  name: string;
  label: string;
  type: string;
  typeName: string;
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: (MessageDescriptor & { options?: { mapEntry?: boolean } | null })[];
}
type Definitions = Record<string, { type?: MessageDescriptor } | undefined>;
const definitions = marchproxyPackageDefinition() as unknown as Definitions;

const INVALID_DATE = new Date(Number.NaN);
const scalar: Record<string, () => fc.Arbitrary<unknown>> = {
  TYPE_STRING: () => hostileString(KNOWN),
  TYPE_BOOL: () => fc.boolean(),
  TYPE_INT32: () => hostileNumber('int32'),
  TYPE_ENUM: () => fc.oneof(fc.integer({ min: 0, max: 12 }), hostileNumber('int32')),
  TYPE_INT64: () => hostileNumber('int64'),
  TYPE_DOUBLE: () => hostileNumber('double'),
  TYPE_FLOAT: () => hostileNumber('double'),
  TYPE_BYTES: () =>
    fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.string({ unit: 'grapheme', maxLength: 200 }).map((s) => new TextEncoder().encode(s)),
      fc
        .constantFrom(
          '{}',
          'a: 1',
          'a: &a [1]\nb: *a',
          '*x',
          '[1',
          '!!binary AA==',
          'listeners: []',
          'strategy: x',
        )
        .map((s) => new TextEncoder().encode(s)),
    ),
};

/** An arbitrary message of the contract, field by field, as the wire can carry it (depth-bounded). */
function messageArb(typeName: string, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const desc = definitions[`marchproxy.${typeName}`]?.type;
  if (!desc) throw new Error(`no descriptor for ${typeName}`);
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of desc.field) {
    const mapEntry = desc.nestedType.find((n) => n.name === f.typeName && n.options?.mapEntry);
    let arb: fc.Arbitrary<unknown>;
    if (mapEntry) {
      const value = mapEntry.field[1];
      fields[f.name] = fc.dictionary(
        hostileString(KNOWN),
        value.type === 'TYPE_MESSAGE' ? messageArb(value.typeName, depth + 1) : scalar[value.type](),
        { maxKeys: depth > 1 ? 2 : 6 },
      );
      continue;
    }
    if (f.type === 'TYPE_MESSAGE') {
      if (f.typeName.endsWith('Timestamp')) {
        // Huge seconds on the wire decode to an invalid Date.
        arb = fc.oneof(fc.date({ noInvalidDate: true }), fc.constant(INVALID_DATE));
      } else if (depth > 2) {
        arb = fc.constant(undefined);
      } else {
        arb = messageArb(f.typeName, depth + 1);
      }
    } else {
      const make = scalar[f.type];
      if (!make) throw new Error(`no arbitrary for ${f.type} (${typeName}.${f.name})`);
      arb = make();
    }
    fields[f.name] =
      f.label === 'LABEL_REPEATED'
        ? fc.array(arb, { maxLength: depth > 1 ? 2 : 5 })
        : fc.option(arb, { nil: undefined });
  }
  return fc.record(fields, { requiredKeys: [] });
}

/** One RPC of a fuzz case: the handler's name and its request. */
interface Call {
  name: string;
  req: unknown;
}

type Handler = (call: unknown, callback: (err: Partial<ServiceError> | null, res?: unknown) => void) => void;
interface Rpc {
  name: string;
  request: fc.Arbitrary<unknown>;
}

/** The unary methods of a generated service with an arbitrary for each one's request. */
function unaryRpcs(service: ServiceDef, gen: Record<string, unknown>, skip: readonly string[]): Rpc[] {
  const defs = definitions as unknown as Record<
    string,
    Record<string, { requestType: { type: MessageDescriptor } }>
  >;
  return Object.entries(service)
    .filter(([name, m]) => !m.requestStream && !m.responseStream && !skip.includes(name))
    .map(([name, m]) => {
      const [svc, method] = m.path.slice(1).split('/');
      const reqName = defs[svc][method].requestType.type.name;
      const fns = gen[reqName] as { fromPartial(o: unknown): unknown };
      return { name, request: messageArb(reqName, 0).map((o) => fns.fromPartial(o)) };
    });
}

type ServiceDef = Record<
  string,
  { requestStream: boolean; responseStream: boolean; path: string; responseSerialize(res: never): Buffer }
>;

/**
 * Calls a grpc-js unary handler as the server would; resolves with its error or its response,
 * which must serialize (grpc-js fails the call with INTERNAL when it does not).
 */
async function call(
  service: Record<string, Handler>,
  def: ServiceDef,
  name: string,
  request: unknown,
): Promise<{ err: Partial<ServiceError> | null; res?: unknown }> {
  const out = await invoke(service[name], request);
  if (!out.err) def[name].responseSerialize(out.res as never);
  return out;
}

function invoke(
  handler: Handler,
  request: unknown,
): Promise<{ err: Partial<ServiceError> | null; res?: unknown }> {
  const fakeCall = {
    request,
    metadata: new Metadata(),
    getPeer: () => 'ipv4:127.0.0.1:1',
    on: () => undefined,
  };
  return new Promise((resolve) => handler(fakeCall, (err, res) => resolve({ err, res })));
}

function expectNoBug(
  name: string,
  out: { err: Partial<ServiceError> | null },
  logger: ReturnType<typeof memoryLogger>,
): void {
  const bugs = logger.lines.filter((l) => l.level === 'error');
  if (bugs.length) throw new Error(`${name}: unexpected error ${JSON.stringify(bugs[0].fields)}`);
  expect(out.err?.code, `${name}: ${out.err?.details}`).not.toBe(status.INTERNAL);
  if (out.err) expect(out.err.details).toBeTruthy();
}

const nlbDef = nlbGen.NLBServiceService as unknown as ServiceDef;
const moduleDef = moduleGen.ModuleServiceService as unknown as ServiceDef;

const modulesPort = {
  canHandle: () => Promise.resolve({ canHandle: true, priority: 1, reason: 'ok' }),
  healthCheck: () => Promise.resolve({ status: 'HEALTHY' as const, message: '' }),
  scale: () => Promise.resolve({ success: true, message: 'ok', currentInstances: 1, desiredInstances: 1 }),
};

/** A fresh NLB core with one registered ALB instance and its NLBService handlers. */
function nlbService() {
  const clock = createManualClock();
  const logger = memoryLogger();
  const nlb = new Nlb({
    clock,
    rng: createRng('fuzz'),
    logger,
    state: createMemoryStatePort(),
    modules: modulesPort,
    version: '0.0.0-fuzz',
  });
  nlb.register(spec(), [], 'HEALTHY');
  const service = createNlbService({
    nlb,
    routing: new RoutingService(nlb),
    logger,
    clock,
  }) as unknown as Record<string, Handler>;
  return { service, logger };
}

/** A module controller (ALB plugin, instances that only record) with its ModuleService handlers. */
function moduleService() {
  const clock = createManualClock(0);
  const logger = memoryLogger();
  const provider: InstanceProvider = {
    kind: 'inprocess',
    start: (launch) =>
      Promise.resolve({
        id: launch.id,
        trafficAddress: '127.0.0.1:9000',
        pid: null,
        startedAtMs: clock.now(),
        status: () => Promise.resolve({ status: 'HEALTHY' as const, lease: 'registered', heartbeats: 0 }),
        stats: () => Promise.reject(new Error('no stats in this test')),
        apply: () => Promise.resolve(),
        drain: () => Promise.resolve(0),
        stop: () => Promise.resolve(),
        onUnexpectedExit: () => undefined,
      }),
  };
  const controller = new ModuleController({
    plugin: albPlugin,
    version: '1.0',
    clock,
    rng: createRng('fuzz'),
    logger,
    provider,
    store: createControllerMemoryStore(),
    host: '127.0.0.1',
    heartbeatIntervalMs: 1000,
    initialInstances: 0,
    defaultDrainTimeoutMs: 5000,
  });
  const nlb: NlbApi = {
    target: '127.0.0.1:1',
    register: () => Promise.reject(new Error('not used')),
    heartbeat: () => Promise.reject(new Error('not used')),
    unregister: () => Promise.reject(new Error('not used')),
    updateRouting: () => Promise.reject(new Error('connection refused')),
    updateDeployment: () => Promise.reject(new Error('connection refused')),
    close: () => undefined,
  };
  const service = createModuleService({
    controller,
    sampler: new ModuleMetricsSampler(controller, clock),
    nlb,
    logger,
    clock,
    onShutdown: () => undefined,
  }) as unknown as Record<string, Handler>;
  return { service, logger };
}

describe(`RPC handlers on hostile requests (fast-check) ${seedLabel}`, () => {
  it('NLBService: every unary RPC answers or fails with a domain error', async () => {
    const rpcs = unaryRpcs(nlbDef, nlbGen, []);
    expect(rpcs.length).toBeGreaterThan(15);
    const arb = fc.oneof(...rpcs.map((r) => r.request.map((req) => ({ name: r.name, req }))));
    await fuzzAssert(
      fc.asyncProperty(arb, async ({ name, req }) => {
        const { service, logger } = nlbService();
        expectNoBug(name, await call(service, nlbDef, name, req), logger);
      }),
      fuzzParams<[Call]>('NLBService handlers', 2000, [
        // Found by this property: an inherited field name reached Object.prototype (INTERNAL).
        [
          {
            name: 'listModules',
            req: nlbGen.ListModulesRequest.fromPartial({ query: { sortBy: '__proto__' } }),
          },
        ],
        [
          {
            name: 'getRoutingTable',
            req: nlbGen.GetRoutingTableRequest.fromPartial({
              query: { filters: [{ field: 'hasOwnProperty', operator: 'eq', value: 'x' }] },
            }),
          },
        ],
      ]),
    );
  });

  it('NLBService: sequences of requests on one NLB (register, then use) never hit a bug', async () => {
    const rpcs = unaryRpcs(nlbDef, nlbGen, []);
    // Registrations that pass validation, so that later calls meet instances, versions and routes.
    const register = fc
      .record({
        instanceId: fc.oneof(validId, fc.constantFrom('alb-1', 'alb-2')),
        moduleType: fc.integer({ min: 1, max: 4 }),
        address: validAddress,
        version: fc.oneof(validVersion, fc.constantFrom('1.0', '2.0', 'constructor', 'toString', 'valueOf')),
        routes: fc.array(validRouteArb, { maxLength: 3 }),
      })
      .map(({ instanceId, moduleType, address, version, routes }) => ({
        name: 'registerModule',
        req: nlbGen.RegisterModuleRequest.fromPartial({
          instance: { instanceId, moduleType, address, version },
          initialRoutes: routes.map((r) => ({ ...r, protocol: 0 })),
        }),
      }));
    const arb = fc.array(
      fc.oneof(register, ...rpcs.map((r) => r.request.map((req) => ({ name: r.name, req })))),
      { minLength: 1, maxLength: 6 },
    );
    await fuzzAssert(
      fc.asyncProperty(arb, async (calls) => {
        const { service, logger } = nlbService();
        for (const { name, req } of calls) expectNoBug(name, await call(service, nlbDef, name, req), logger);
      }),
      fuzzParams<[Call[]]>('NLBService request sequences', 800, [
        // Found by this file: a second version named "constructor" read Object.prototype as its
        // weight, and every ListModules after it failed to serialize (INTERNAL).
        [
          [
            ...['1.0', 'constructor'].map((version, i): Call => ({
              name: 'registerModule',
              req: nlbGen.RegisterModuleRequest.fromPartial({
                instance: { instanceId: `alb-${i + 2}`, moduleType: 1, address: '127.0.0.1:50051', version },
              }),
            })),
            { name: 'listModules', req: nlbGen.ListModulesRequest.fromPartial({}) },
          ],
        ],
      ]),
    );
  });

  it('ModuleService: every unary RPC answers or fails with a domain error', async () => {
    // Shutdown ends the controller (and its process in production); it has no request fields to validate but two.
    const rpcs = unaryRpcs(moduleDef, moduleGen, ['shutdown']);
    expect(rpcs.length).toBeGreaterThan(15);
    const arb = fc.oneof(...rpcs.map((r) => r.request.map((req) => ({ name: r.name, req }))));
    await fuzzAssert(
      fc.asyncProperty(arb, async ({ name, req }) => {
        const { service, logger } = moduleService();
        expectNoBug(name, await call(service, moduleDef, name, req), logger);
      }),
      fuzzParams<[Call]>('ModuleService handlers', 2000),
    );
  });
});
