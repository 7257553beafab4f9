/**
 * Layered process configuration (STYLE.md "Config"): one zod schema per process, and
 * schema defaults < file (YAML or JSON) < environment < flags. main.ts calls `loadConfig` once,
 * passing `process.env` and its parsed flags, and hands the typed result down.
 *
 * Environment values and string flag values are coerced by the type of the schema field they
 * land on (number, bigint, boolean, arrays as comma-separated items or JSON, objects as JSON), so
 * schemas need no `z.coerce`. Empty environment values count as unset. Problems name their
 * source (file and line, env var, flag) but never echo the value, which may be a secret.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { Problems, invalidArgument } from './errors.js';
import { closest } from './suggest.js';

export interface ConfigSources {
  /** A file the operator named (e.g. `--config`): it must exist. */
  file?: string;
  /** The conventional location, read only when `file` is not given; it may be absent. */
  defaultFile?: string;
  /** Usually `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** ENV_NAME → dotted config path, e.g. `{ MP_GRPC_PORT: 'grpc.port' }`. */
  envMap?: Readonly<Record<string, string>>;
  /** Dotted config path → value; undefined values (flags not given) are ignored. */
  flags?: Readonly<Record<string, unknown>>;
  /**
   * Dotted config path → value, under every other source (e.g. what `--local-stack` reads from
   * the local stack): the file, the environment and the flags all override it.
   */
  base?: Readonly<Record<string, unknown>>;
}

type Path = readonly (string | number)[];
type Tree = Record<string, unknown>;
interface LoadedFile {
  path: string;
  value: Tree;
  doc: Document;
  lines: LineCounter;
}
interface Override {
  path: Path;
  label: string;
}

/** Loads, merges and validates configuration; throws one invalid_argument DomainError naming every problem. */
export function loadConfig<S extends z.ZodType>(schema: S, sources: ConfigSources = {}): z.output<S> {
  const problems = new Problems();
  const explained: Path[] = []; // already reported here, so zod does not repeat them less clearly
  const fileName = sources.file ?? sources.defaultFile;
  const file =
    fileName === undefined ? undefined : readConfigFile(fileName, sources.file !== undefined, problems);
  if (file) {
    checkKnownKeys(schema, file.value, [], (path, known) => {
      const hint = suggest(String(path[path.length - 1]), known);
      // A misspelt key usually leaves the real one unset; the hint already says so.
      explained.push(path, ...(hint === undefined ? [] : [[...path.slice(0, -1), hint]]));
      const mean = hint === undefined ? '' : ` (did you mean "${dotted([...path.slice(0, -1), hint])}"?)`;
      problems.add(`file ${file.path}${lineOf(file, path, true)}: unknown key "${dotted(path)}"${mean}`);
    });
  }

  const resolve = (
    label: string,
    pathText: string,
  ): { path: string[]; schema: z.core.$ZodType } | undefined => {
    const path = pathText.split('.');
    const target = schemaAt(schema, path);
    if (target.schema) return { path, schema: target.schema };
    const hint = suggest(path[target.depth] ?? '', target.known);
    const mean =
      hint === undefined ? '' : ` (did you mean "${[...path.slice(0, target.depth), hint].join('.')}"?)`;
    problems.add(`${label}: unknown config key "${pathText}"${mean}`);
    return undefined;
  };
  const overrides: Override[] = [];
  const apply = (layer: Tree, label: string, pathText: string, raw: unknown): void => {
    const target = resolve(label, pathText);
    if (!target) return;
    const coerced = typeof raw === 'string' ? coerce(target.schema, raw) : { ok: true as const, value: raw };
    if (!coerced.ok) {
      problems.add(`${label}: expected ${coerced.expected}`);
      explained.push(target.path);
      return;
    }
    setPath(layer, target.path, coerced.value);
    overrides.push({ path: target.path, label });
  };
  const envLayer: Tree = {};
  for (const [name, pathText] of Object.entries(sources.envMap ?? {})) {
    const raw = sources.env?.[name];
    // A mapping to a key that does not exist is a bug in main.ts: report it even when unset.
    if (raw === undefined || raw === '') resolve(`envMap ${name}`, pathText);
    else apply(envLayer, `env ${name} (${pathText})`, pathText, raw);
  }
  const flagLayer: Tree = {};
  for (const [pathText, value] of Object.entries(sources.flags ?? {})) {
    if (value !== undefined) apply(flagLayer, `flag ${pathText}`, pathText, value);
  }
  const baseLayer: Tree = {};
  for (const [pathText, value] of Object.entries(sources.base ?? {})) {
    if (value !== undefined) apply(baseLayer, `base ${pathText}`, pathText, value);
  }

  const merged = deepMerge(baseLayer, file?.value ?? {}, envLayer, flagLayer);
  const result = schema.safeParse(merged);
  if (result.success && problems.empty) return result.data;
  for (const issue of result.error?.issues ?? []) {
    const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
    if (explained.some((p) => isPrefix(p, path))) continue;
    if (
      issue.code === 'unrecognized_keys' &&
      issue.keys.every((k) => explained.some((p) => isPrefix(p, [...path, k])))
    ) {
      continue;
    }
    problems.add(describeIssue(issue, path, merged, file, overrides, sources.envMap ?? {}));
  }
  problems.check('configuration');
  throw invalidArgument('invalid configuration'); // not reached: check() throws when there are problems
}

function readConfigFile(path: string, required: boolean, problems: Problems): LoadedFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return undefined;
    problems.add(code === 'ENOENT' ? `file ${path}: not found` : `file ${path}: cannot be read (${code})`);
    return undefined;
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  for (const err of doc.errors) {
    const pos = err.linePos?.[0];
    const message = (err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:$/, '');
    problems.add(`file ${path}${pos ? ` line ${pos.line}, column ${pos.col}` : ''}: ${message}`);
  }
  if (doc.errors.length > 0) return undefined;
  let value: unknown;
  try {
    value = doc.toJS() ?? {};
  } catch (e) {
    // An alias to an anchor that comes later, or an alias bomb past the yaml package's limit.
    problems.add(`file ${path}: ${(e as Error).message}`);
    return undefined;
  }
  // A top-level tag such as !!binary, !!set or !!omap builds a Buffer, Set or Map: not a mapping.
  if (!isTree(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    problems.add(`file ${path}: the top level must be a mapping of keys to values`);
    return undefined;
  }
  return { path, value, doc, lines };
}

function describeIssue(
  issue: z.core.$ZodIssue,
  path: Path,
  merged: Tree,
  file: LoadedFile | undefined,
  overrides: readonly Override[],
  envMap: Readonly<Record<string, string>>,
): string {
  const key = path.length > 0 ? dotted(path) : 'config';
  if (issue.code === 'invalid_type' && getPath(merged, path) === undefined) {
    const under = (target: string) => isPrefix(path, target.split('.'));
    const names = Object.keys(envMap).filter((name) => under(envMap[name] ?? ''));
    return `${key}: required but not set (set it in ${['the config file', ...names.map((n) => `env ${n}`)].join(' or ')})`;
  }
  const message =
    issue.code === 'invalid_union'
      ? `matches none of the allowed forms (${issue.errors.map((e) => e.map(plain).join(', ')).join(' | ')})`
      : plain(issue);
  // The latest layer that set this value or one of its parents is where the value came from.
  const setter = [...overrides].reverse().find((o) => isPrefix(o.path, path));
  if (setter) return `${setter.label}: ${message}`;
  const sources = overrides.filter((o) => isPrefix(path, o.path)).map((o) => o.label);
  const inFile = file !== undefined && getPath(file.value, path) !== undefined;
  const where = inFile ? `file ${file.path}${lineOf(file, path, false)}` : undefined;
  if (where && sources.length === 0) return `${where}, ${key}: ${message}`;
  const all = where ? [where, ...sources] : sources;
  return all.length === 0 ? `${key}: ${message}` : `${key}: ${message} (from ${all.join('; ')})`;
}

const plain = (issue: { message: string }): string => issue.message.replace(/^Invalid input: /, '');

/** " line N" for `path` in the file: the key's line, or a scalar value's when `atKey` is false. */
function lineOf(file: LoadedFile, path: Path, atKey: boolean): string {
  const parent: unknown = path.length > 1 ? file.doc.getIn(path.slice(0, -1), true) : file.doc.contents;
  const last = path[path.length - 1];
  let range: readonly number[] | null | undefined;
  if (isMap(parent)) {
    const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(last));
    const nested = isMap(pair?.value) || isSeq(pair?.value); // a block starts on its key's line
    const node = atKey || nested ? pair?.key : (pair?.value ?? pair?.key);
    range = (node as { range?: readonly number[] | null } | null | undefined)?.range;
  } else if (isSeq(parent) && typeof last === 'number') {
    range = (parent.items[last] as { range?: readonly number[] | null } | undefined)?.range;
  }
  return range?.[0] === undefined ? '' : ` line ${file.lines.linePos(range[0]).line}`;
}

// ---- schema introspection (zod 4 definitions) ----

/** The schema that actually judges a value, past optional/default/lazy/pipe wrappers. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodTypes {
  let s = schema as z.core.$ZodTypes;
  for (;;) {
    const def = s._zod.def;
    switch (def.type) {
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'catch':
      case 'readonly':
      case 'nonoptional':
        s = def.innerType as z.core.$ZodTypes;
        break;
      case 'lazy':
        s = def.getter() as z.core.$ZodTypes;
        break;
      case 'pipe':
        s = def.in as z.core.$ZodTypes;
        break;
      default:
        return s;
    }
  }
}

/** Known keys at an object level, or undefined when any key is allowed (loose objects, records). */
function childSchema(s: z.core.$ZodTypes, key: string): { schema?: z.core.$ZodType; known: string[] } {
  if (s._zod.def.type === 'record') return { schema: s._zod.def.valueType, known: [] };
  if (s._zod.def.type !== 'object') return { known: [] };
  const { shape, catchall } = s._zod.def;
  const known = Object.keys(shape);
  if (Object.hasOwn(shape, key)) return { schema: shape[key], known };
  const open = catchall !== undefined && catchall._zod.def.type !== 'never';
  return { schema: open ? catchall : undefined, known };
}

function schemaAt(schema: z.core.$ZodType, path: readonly string[]) {
  let current: z.core.$ZodType = schema;
  for (let depth = 0; depth < path.length; depth++) {
    const child = childSchema(unwrap(current), path[depth] ?? '');
    if (!child.schema) return { schema: undefined, depth, known: child.known };
    current = child.schema;
  }
  return { schema: current, depth: path.length, known: [] };
}

/** Walks a file's value beside the schema and reports keys that no strict or plain object knows. */
function checkKnownKeys(
  schema: z.core.$ZodType,
  value: unknown,
  path: Path,
  report: (path: Path, known: string[]) => void,
): void {
  const s = unwrap(schema);
  const def = s._zod.def;
  if (def.type === 'array' && Array.isArray(value)) {
    value.forEach((item, i) => checkKnownKeys(def.element, item, [...path, i], report));
    return;
  }
  if ((def.type !== 'object' && def.type !== 'record') || !isTree(value)) return;
  for (const key of Object.keys(value)) {
    const child = childSchema(s, key);
    if (child.schema) checkKnownKeys(child.schema, value[key], [...path, key], report);
    else report([...path, key], child.known);
  }
}

type Coerced = { ok: true; value: unknown } | { ok: false; expected: string };
const BOOLEANS = new Map([
  ['true', true],
  ['false', false],
  ['1', true],
  ['0', false],
  ['yes', true],
  ['no', false],
]);

/** Turns an env/flag string into the type its schema field expects; strings pass through. */
function coerce(schema: z.core.$ZodType, raw: string): Coerced {
  const s = unwrap(schema);
  const text = raw.trim();
  switch (s._zod.def.type) {
    case 'number': {
      const n = Number(text);
      return text !== '' && !Number.isNaN(n) ? { ok: true, value: n } : { ok: false, expected: 'a number' };
    }
    case 'bigint':
      return /^-?\d+$/.test(text) ? { ok: true, value: BigInt(text) } : { ok: false, expected: 'an integer' };
    case 'boolean': {
      const b = BOOLEANS.get(text.toLowerCase());
      return b === undefined ? { ok: false, expected: 'true/false, 1/0 or yes/no' } : { ok: true, value: b };
    }
    case 'literal': {
      const literal = s._zod.def.values.find((v) => String(v) === text);
      return { ok: true, value: literal ?? raw };
    }
    case 'array': {
      if (text.startsWith('[')) return parseJson(text, 'a JSON array');
      const element = s._zod.def.element;
      const parts = text.split(',').map((item) => item.trim());
      const items = parts.filter((item) => item !== '').map((item) => coerce(element, item));
      const bad = items.find((item) => !item.ok);
      if (bad && !bad.ok) return { ok: false, expected: `a comma-separated list of ${bad.expected}` };
      return { ok: true, value: items.map((item) => (item.ok ? item.value : undefined)) };
    }
    case 'object':
    case 'record':
      return parseJson(text, 'a JSON object');
    case 'union': {
      // Try the non-string forms first, so "8080" becomes a number where a number is allowed.
      for (const option of s._zod.def.options) {
        const c = coerce(option, raw);
        if (c.ok && typeof c.value !== 'string' && z.safeParse(option, c.value).success) return c;
      }
      return { ok: true, value: raw };
    }
    default:
      return { ok: true, value: raw };
  }
}

function parseJson(text: string, expected: string): Coerced {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, expected };
  }
}

// ---- plain-object helpers ----

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Merges plain objects recursively (later layers win); arrays and scalars are replaced, inputs untouched. */
export function deepMerge(base: Readonly<Tree>, ...layers: readonly Readonly<Tree>[]): Tree {
  const out: Tree = {};
  for (const layer of [base, ...layers]) {
    for (const [key, value] of Object.entries(layer)) {
      const prev = out[key];
      const next = isTree(prev) && isTree(value) ? deepMerge(prev, value) : value;
      // defineProperty: a "__proto__" key from a file stays an ordinary (and reported) key.
      Object.defineProperty(out, key, { value: next, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

function setPath(tree: Tree, path: readonly string[], value: unknown): void {
  let node = tree;
  path.forEach((key, i) => {
    const next = i === path.length - 1 ? value : isTree(node[key]) ? node[key] : {};
    Object.defineProperty(node, key, { value: next, enumerable: true, writable: true, configurable: true });
    if (isTree(next)) node = next;
  });
}

function getPath(tree: unknown, path: Path): unknown {
  let node = tree;
  for (const key of path) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

const isPrefix = (prefix: Path, path: Path): boolean =>
  prefix.length <= path.length && prefix.every((key, i) => String(key) === String(path[i]));

const dotted = (path: Path): string =>
  path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');

/** The closest known key within edit distance 2, for "did you mean" hints. */
const suggest = (key: string, known: readonly string[]): string | undefined => closest(key, known, 2)[0];

// ---- durations ----

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_HINT = 'use a number with a unit (ms, s, m, h, d), e.g. "250ms", "30s", "5m", "1h30m"';

/** Parses "250ms", "30s", "5m", "1h30m", "2d" (or a number of milliseconds) into whole milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return Math.round(value);
    throw invalidArgument(`invalid duration ${value}: expected a non-negative number of milliseconds`);
  }
  const text = value.trim();
  if (text === '0') return 0;
  if (/^\d+(\.\d+)?$/.test(text)) {
    throw invalidArgument(`invalid duration "${value}": missing a unit; ${DURATION_HINT}`);
  }
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) {
    throw invalidArgument(`invalid duration "${value}": ${DURATION_HINT}`);
  }
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    total += Number(amount) * (UNIT_MS[unit ?? ''] ?? Number.NaN);
  }
  return Math.round(total);
}

/** A schema field for durations: accepts what parseDuration accepts and outputs milliseconds. */
export function durationMs() {
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    try {
      return parseDuration(value);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: value });
      return z.NEVER;
    }
  });
}
