/**
 * Turns YAML syntax errors and zod issues into `file:line:col: path: message` lines, with "did
 * you mean" hints for misspelt fields and values. Like services/shared/config.ts, but it also
 * follows discriminated unions (faults, actions, expectations pick their fields by `kind`).
 */
import { LineCounter, isMap, isScalar, isSeq, parseDocument, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { closest } from '../../services/shared/suggest.js';

export type Path = readonly (string | number)[];

export interface YamlSource {
  file: string;
  doc: Document;
  lines: LineCounter;
  value: unknown;
}

/**
 * Parses YAML; syntax errors are returned as problems (no value then). Numbers written under
 * the keys in `verbatim` (versions: `version: 1.10`) are kept as the text written, not 1.1.
 */
export function parseYaml(
  text: string,
  file: string,
  verbatim: readonly string[] = [],
): { source?: YamlSource; problems: string[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const problems = doc.errors.map((err) => {
    const pos = err.linePos?.[0] ?? lines.linePos(err.pos[0]);
    const message = (err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    return `${file}${pos ? `:${pos.line}:${pos.col}` : ''}: ${message}`;
  });
  if (problems.length) return { problems };
  if (verbatim.length)
    visit(doc, {
      Pair(_, pair) {
        const v = pair.value;
        if (
          isScalar(pair.key) &&
          verbatim.includes(String(pair.key.value)) &&
          isScalar(v) &&
          typeof v.value === 'number'
        )
          v.value = v.source ?? String(v.value);
      },
    });
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (e) {
    // An alias to an anchor that comes later, or an alias bomb past the yaml package's limit.
    return { problems: [`${file}: ${(e as Error).message}`] };
  }
  return { source: { file, doc, lines, value }, problems };
}

/** "faults[2].count" */
export const dotted = (path: Path): string =>
  path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');

interface Ranged {
  range?: readonly number[] | null;
}

/** `file:line:col` of the node at `path` (its key when `atKey`), or of its nearest ancestor. */
export function locate(src: YamlSource, path: Path, atKey = false): string {
  for (let depth = path.length; depth >= 0; depth--) {
    const p = path.slice(0, depth);
    let node: Ranged | null | undefined;
    if (p.length === 0) node = src.doc.contents;
    else {
      const parent: unknown = p.length > 1 ? src.doc.getIn(p.slice(0, -1), true) : src.doc.contents;
      const last = p[p.length - 1];
      if (isMap(parent)) {
        const pair = parent.items.find((i) => isScalar(i.key) && String(i.key.value) === String(last));
        const wantKey = atKey && depth === path.length;
        // A block value starts on its key's line; point at the key.
        const block = isMap(pair?.value) || isSeq(pair?.value);
        node = (wantKey || block ? pair?.key : (pair?.value ?? pair?.key)) as Ranged | undefined;
      } else if (isSeq(parent) && typeof last === 'number') {
        node = parent.items[last] as Ranged | undefined;
      }
    }
    const start = node?.range?.[0];
    if (start !== undefined) {
      const { line, col } = src.lines.linePos(start);
      return `${src.file}:${line}:${col}`;
    }
  }
  return src.file;
}

// ---- schema introspection (zod 4 definitions) ----

type AnySchema = z.core.$ZodType;

function unwrap(schema: AnySchema): z.core.$ZodTypes {
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

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** For a discriminated union: the option the value's discriminator selects, if any. */
function unionOption(s: z.core.$ZodTypes, value: unknown): AnySchema | undefined {
  if (s._zod.def.type !== 'union') return undefined;
  const def = s._zod.def as { options: readonly AnySchema[]; discriminator?: string };
  const key = def.discriminator;
  if (!key || !isObject(value)) return undefined;
  return def.options.find((o) => {
    const values = (o._zod as { propValues?: Record<string, Set<unknown>> }).propValues?.[key];
    return values?.has(value[key]) ?? false;
  });
}

/** The schema that judges the value at `path`, following arrays, objects and discriminated unions. */
export function schemaAt(root: AnySchema, value: unknown, path: Path): z.core.$ZodTypes | undefined {
  let s = unwrap(root);
  let v = value;
  for (const key of path) {
    const option = unionOption(s, v);
    if (option) s = unwrap(option);
    const def = s._zod.def;
    if (def.type === 'array' && typeof key === 'number') {
      s = unwrap(def.element);
    } else if (def.type === 'object' && typeof key === 'string' && Object.hasOwn(def.shape, key)) {
      s = unwrap(def.shape[key]);
    } else if (def.type === 'record') {
      s = unwrap(def.valueType);
    } else {
      return undefined;
    }
    v = isObject(v) || Array.isArray(v) ? (v as Record<string | number, unknown>)[key] : undefined;
  }
  const option = unionOption(s, v);
  return option ? unwrap(option) : s;
}

function knownKeys(root: AnySchema, value: unknown, path: Path): string[] {
  const s = schemaAt(root, value, path);
  return s?._zod.def.type === 'object' ? Object.keys(s._zod.def.shape) : [];
}

function valueAt(value: unknown, path: Path): unknown {
  let v = value;
  for (const k of path) v = isObject(v) || Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

/** A scalar as written (objects as JSON). */
const text = (v: unknown): string => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
const quoted = (xs: readonly unknown[]) => xs.map((x) => `"${String(x)}"`).join(', ');
const plain = (message: string) => message.replace(/^Invalid input: /, '');
const hint = (word: string, candidates: readonly string[]) => {
  const best = closest(word, candidates, Math.max(2, Math.floor(word.length / 3)))[0];
  return best === undefined ? undefined : best;
};

/** One line per zod issue, pointing into the YAML; misspellings get a suggestion. */
export function describeIssues(
  root: AnySchema,
  src: YamlSource,
  issues: readonly z.core.$ZodIssue[],
): string[] {
  const out: string[] = [];
  // A misspelt key leaves the real one unset: do not report the real one as missing too.
  const suggested = new Set<string>();
  const unknown: Array<{ path: Path; key: string }> = [];
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
    for (const key of issue.keys) unknown.push({ path, key });
  }
  for (const { path, key } of unknown) {
    const known = knownKeys(root, src.value, path);
    const best = hint(key, known);
    if (best) suggested.add(dotted([...path, best]));
    const where = locate(src, [...path, key], true);
    const what = `unknown field "${key}"`;
    const tail = best
      ? ` (did you mean "${best}"?)`
      : known.length
        ? `; fields here: ${known.join(', ')}`
        : '';
    out.push(`${where}: ${dotted(path) || 'scenario'}: ${what}${tail}`);
  }
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') continue;
    const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
    const label = dotted(path) || 'scenario';
    const value = valueAt(src.value, path);
    if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator) {
      const options = (issue as { options?: unknown[] }).options?.map(String) ?? [];
      const parent = path.slice(0, -1);
      const key = String(path[path.length - 1]);
      if (value === undefined) {
        if (suggested.has(label)) continue;
        out.push(
          `${locate(src, parent)}: ${dotted(parent)}: missing "${key}" (one of ${options.join(', ')})`,
        );
      } else {
        const best = hint(text(value), options);
        out.push(
          `${locate(src, path)}: ${label}: unknown ${key} "${text(value)}"${best ? ` (did you mean "${best}"?)` : ''}; use one of ${options.join(', ')}`,
        );
      }
      continue;
    }
    if (issue.code === 'invalid_type' && value === undefined) {
      if (suggested.has(label)) continue;
      const parent = path.slice(0, -1);
      out.push(
        `${locate(src, parent)}: ${dotted(parent) || 'scenario'}: missing required field "${path[path.length - 1]}"`,
      );
      continue;
    }
    if (issue.code === 'invalid_value') {
      const options = issue.values.map(String);
      const best = typeof value === 'string' ? hint(value, options) : undefined;
      out.push(
        `${locate(src, path)}: ${label}: ${value === undefined ? 'missing' : `"${text(value)}" is not allowed`}${best ? ` (did you mean "${best}"?)` : ''}; use one of ${quoted(options)}`,
      );
      continue;
    }
    out.push(`${locate(src, path)}: ${label}: ${plain(issue.message)}`);
  }
  return out;
}
