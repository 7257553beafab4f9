/**
 * Shared settings for the property-based fuzz tests (test/unit/fuzz-*.test.ts, docs/hardening.md
 * "Fuzzing"). Every property run prints its seed; to replay a failure, run the same file with
 * that seed:
 *
 *   MP_FUZZ_SEED=1234567 npx vitest run test/unit/fuzz-detect.test.ts
 *
 * fast-check's failure report also prints a `path`: pass it as MP_FUZZ_PATH (with the seed) to
 * jump straight to the shrunk counterexample of one property. MP_FUZZ_SCALE multiplies every
 * property's number of runs (e.g. 10 for a long local session, 0.1 for a quick look).
 */
import fc from 'fast-check';
import { DomainError } from '../../services/shared/errors.js';

const envSeed = process.env.MP_FUZZ_SEED;
const parsedSeed = envSeed === undefined || envSeed === '' ? Number.NaN : Number(envSeed);
if (envSeed && !Number.isSafeInteger(parsedSeed)) {
  throw new Error(`MP_FUZZ_SEED must be an integer (the seed a fuzz run printed), not "${envSeed}"`);
}
/** One seed per test file run, printed with every property so any failure can be replayed. */
export const FUZZ_SEED = Number.isSafeInteger(parsedSeed) ? parsedSeed : Math.floor(Math.random() * 2 ** 31);
const SCALE = Number(process.env.MP_FUZZ_SCALE ?? '1');
const PATH = process.env.MP_FUZZ_PATH || undefined;

/**
 * A wall-clock budget per property: a property that has not finished its runs by then stops
 * early and passes with the runs it made (fast-check's interruptAfterTimeLimit), so a loaded
 * machine shortens a fuzz run instead of failing it. Not a performance threshold: a hang inside
 * one case is caught by the vitest test timeout, and async cases by `timeout` below.
 */
const PROPERTY_BUDGET_MS = 6_000;
/** One async case may take this long before it counts as a hang (a failure). */
export const CASE_TIMEOUT_MS = 2_000;

/**
 * A property that made fewer than this share of its planned runs within the budget fails: a
 * "pass" on a handful of cases would mean nothing.
 */
const MIN_RUN_SHARE = 0.1;

/** Property names by their parameters, for the line fuzzAssert prints. */
const names = new WeakMap<object, string>();

/** fuzzAssert parameters for one property, after printing how to replay it. */
export function fuzzParams<T>(name: string, numRuns: number, examples: T[] = []): fc.Parameters<T> {
  const runs = Math.max(1, Math.round(numRuns * (Number.isFinite(SCALE) && SCALE > 0 ? SCALE : 1)));
  console.log(`fuzz ${name}: seed ${FUZZ_SEED}, ${runs} runs planned (replay: MP_FUZZ_SEED=${FUZZ_SEED})`);
  const params: fc.Parameters<T> = {
    seed: FUZZ_SEED,
    numRuns: runs,
    examples,
    interruptAfterTimeLimit: PROPERTY_BUDGET_MS,
    timeout: CASE_TIMEOUT_MS,
    ...(PATH ? { path: PATH } : {}),
  };
  names.set(params, name);
  return params;
}

/**
 * fc.assert that also says how many runs were actually made (the time budget may cut a run
 * short) and fails when that is under MIN_RUN_SHARE of the plan. Returns a promise for async
 * properties.
 */
export function fuzzAssert<T>(property: fc.IAsyncProperty<T>, params: fc.Parameters<T>): Promise<void>;
export function fuzzAssert<T>(property: fc.IProperty<T>, params: fc.Parameters<T>): void;
export function fuzzAssert<T>(
  property: fc.IProperty<T> | fc.IAsyncProperty<T>,
  params: fc.Parameters<T>,
): void | Promise<void> {
  const name = names.get(params) ?? 'property';
  const planned = params.numRuns ?? 100;
  const done = (d: fc.RunDetails<T>): void => {
    if (d.failed) throw new Error(fc.defaultReportMessage(d) ?? `fuzz ${name} failed`);
    console.log(
      `fuzz ${name}: ${d.numRuns} of ${planned} runs${d.interrupted ? ' (time budget reached)' : ''}`,
    );
    if (d.numRuns < Math.ceil(planned * MIN_RUN_SHARE))
      throw new Error(
        `fuzz ${name}: only ${d.numRuns} of ${planned} runs within the ${PROPERTY_BUDGET_MS} ms budget, too few to mean anything (seed ${FUZZ_SEED})`,
      );
  };
  const details = fc.check(property as fc.IProperty<T>, params);
  return details instanceof Promise ? details.then(done) : done(details);
}

/** Test name suffix carrying the seed, so a report line alone is enough to replay. */
export const seedLabel = `(seed ${FUZZ_SEED})`;

/** Runs `fn`; returns undefined or the DomainError it threw, and rethrows anything else. */
export function domainErrorOrNothing(fn: () => unknown): DomainError | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof DomainError) {
      if (!e.message) throw new Error(`a DomainError (${e.kind}) without a message`, { cause: e });
      return e;
    }
    throw e;
  }
}

/**
 * Strings a hostile client sends: empty, huge, control characters, lone surrogates, emoji,
 * right-to-left text, look-alikes of the valid forms.
 */
export function hostileString(valid: readonly string[] = []): fc.Arbitrary<string> {
  const pieces = [
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.constantFrom(
      '',
      ' ',
      '\0',
      '\r\n',
      '*',
      '*.',
      '/*',
      '[::1]:0',
      '127.0.0.1:65536',
      '::ffff:1.2.3.4',
      '__proto__',
      'constructor',
      'toString',
      '\u202e',
      '\ud800',
      '𝔘𝔫𝔦',
      '%00',
      '../../',
      'NaN',
      '-1',
      '1e309',
    ),
    fc.constantFrom('a', 'é', '*', '/', ':').map((c) => c.repeat(20_000)),
  ];
  if (valid.length) pieces.push(fc.constantFrom(...valid));
  return fc.oneof(...pieces);
}

/** Numbers a hostile client sends, within what its field's wire type can carry. */
export function hostileNumber(kind: 'int32' | 'int64' | 'double'): fc.Arbitrary<number> {
  const ints = [
    fc.integer({ min: -2, max: 100 }),
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    fc.constantFrom(0, -1, 1, 65535, 65536, 100, 101, 1_000_000, 10_000_001, 2 ** 31 - 1, -(2 ** 31)),
  ];
  if (kind === 'int32') return fc.oneof(...ints);
  if (kind === 'int64')
    return fc.oneof(...ints, fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 40));
  return fc.oneof(
    ...ints,
    fc.double(),
    fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, Number.MAX_VALUE, Number.MIN_VALUE),
  );
}
