/**
 * Pieces the NLBService commands share: enum flags in the words users type (alb, healthy,
 * http), key=value and --filter parsing, the route flags of `routes apply|resolve|validate`,
 * the Query of listings, and small formatters for human output.
 */
import { Flags } from '@oclif/core';
import { CliFailure, usageFailure } from './exit-codes.js';
import { parseKeyValue, parseNonNegativeInt, parsePositiveInt } from './flag-parsers.js';
import { MODULE_TYPES } from './rpc-command.js';

export const HEALTH_STATUSES = [
  'healthy',
  'degraded',
  'unhealthy',
  'starting',
  'stopping',
  'stopped',
] as const;

export const PROTOCOLS = [
  'tcp',
  'udp',
  'http',
  'https',
  'http2',
  'http3',
  'grpc',
  'websocket',
  'mysql',
  'postgres',
  'mongodb',
  'redis',
  'rtmp',
  'rtmps',
  'hls',
  'dash',
] as const;

/** "healthy" → "HEALTH_STATUS_HEALTHY"; undefined stays undefined (no filter). */
export const healthEnum = (s: string | undefined) => (s ? `HEALTH_STATUS_${s.toUpperCase()}` : undefined);
/** "http" → "PROTOCOL_HTTP". */
export const protocolEnum = (s: string | undefined) => (s ? `PROTOCOL_${s.toUpperCase()}` : undefined);

/** --type: a module type. */
export const typeFlag = Flags.custom<string>({
  description: 'Module type',
  options: [...MODULE_TYPES],
});

/** A repeatable key=value flag, parsed to {key, value}. */
export const keyValueFlag = Flags.custom<{ key: string; value: string }>({
  multiple: true,
  parse: (input) => Promise.resolve(parseKeyValue(input)),
});

/** A whole number >= 1. */
export const positiveIntFlag = Flags.custom<number>({
  parse: (input) => Promise.resolve(parsePositiveInt(input)),
});

/** A whole number >= 0. */
export const nonNegativeIntFlag = Flags.custom<number>({
  parse: (input) => Promise.resolve(parseNonNegativeInt(input)),
});

/** A TCP/UDP port 1-65535. */
export const portFlag = Flags.custom<number>({
  parse: (input) => {
    const n = parseNonNegativeInt(input);
    if (n < 1 || n > 65_535) throw new Error(`port must be 1-65535, got ${input}`);
    return Promise.resolve(n);
  },
});

/** Collects repeated key=value flags into a map (the last value of a key wins). */
export function toMap(
  pairs: ReadonlyArray<{ key: string; value: string }> | undefined,
): Record<string, string> {
  return Object.fromEntries((pairs ?? []).map(({ key, value }) => [key, value]));
}

/** One Filter of a Query, in protobuf JSON. */
export interface FilterJson {
  field: string;
  operator: string;
  value: string;
}

const FILTER_OPERATORS: ReadonlyArray<readonly [string, string]> = [
  ['!=', 'ne'],
  ['>=', 'gte'],
  ['<=', 'lte'],
  ['~=', 'contains'],
  ['^=', 'prefix'],
  ['>', 'gt'],
  ['<', 'lt'],
  ['=', 'eq'],
];

/**
 * Parses a --filter: field=value (a comma-separated value means "any of"), field!=value,
 * field>value, field<value, field>=value, field<=value, field~=value (contains), field^=value
 * (prefix). `fields` are the known field names; others are a usage error.
 */
export function parseFilter(input: string, fields: readonly string[]): FilterJson {
  const match = /^\s*([A-Za-z_][\w.]*)\s*(!=|>=|<=|~=|\^=|=|>|<)(.*)$/.exec(input);
  if (!match) {
    throw usageFailure(
      `--filter: expected field=value (or !=, >, <, >=, <=, ~= for contains, ^= for prefix), got "${input}"`,
    );
  }
  const [, field, op, value] = match;
  if (!fields.includes(field)) {
    throw usageFailure(`--filter: unknown field "${field}"; use one of ${fields.join(', ')}`);
  }
  const operator = FILTER_OPERATORS.find(([symbol]) => symbol === op)![1];
  if (operator === 'eq' && value.includes(',')) return { field, operator: 'in', value };
  return { field, operator, value };
}

/** The Query of a listing from --filter, --sort, --desc, --page and --page-size. */
export function queryJson(
  flags: { filter?: string[]; sort?: string; desc?: boolean; page?: number; 'page-size'?: number },
  fields: readonly string[],
): Record<string, unknown> {
  return {
    filters: (flags.filter ?? []).map((f) => parseFilter(f, fields)),
    sortBy: flags.sort ?? '',
    sortDesc: Boolean(flags.desc),
    pagination: { page: flags.page ?? 1, pageSize: flags['page-size'] ?? 0 },
  };
}

/** Listing flags: --filter, --sort (from `fields`), --desc, --page, --page-size. */
export function listingFlags(fields: readonly string[]) {
  return {
    filter: Flags.string({
      multiple: true,
      description: `Keep rows where field=value (also !=, >, <, >=, <=, ~= contains, ^= prefix; a,b for any of); fields: ${fields.join(', ')}`,
    }),
    sort: Flags.string({ description: 'Sort by this field', options: [...fields] }),
    desc: Flags.boolean({ description: 'Sort descending' }),
    page: positiveIntFlag({ description: 'Page number, from 1' }),
    'page-size': Flags.custom<number>({
      parse: (input) => {
        const n = parsePositiveInt(input);
        if (n > 1000) throw new Error(`expected 1 to 1000, got ${input}`);
        return Promise.resolve(n);
      },
    })({ description: 'Rows per page, 1-1000 (server default 100)' }),
  };
}

/** The line under a listing that has more pages, or undefined. */
export function pageNote(
  pagination: { page?: number; totalPages?: number; totalItems?: number } | undefined,
  noun: string,
): string | undefined {
  const pages = pagination?.totalPages ?? 1;
  if (pages <= 1) return undefined;
  const page = pagination?.page ?? 1;
  const more = page < pages ? `; --page ${page + 1} for more` : '';
  return `page ${page} of ${pages} (${pagination?.totalItems ?? 0} ${noun})${more}`;
}

/** Flags that describe a route (routes apply, resolve, validate). */
export const routeFlags = {
  protocol: Flags.string({ description: 'Protocol', options: [...PROTOCOLS] }),
  host: Flags.string({ description: 'Destination host: exact, *.example.com, SNI or an IP' }),
  port: portFlag({ description: 'NLB listener port (destination port)' }),
  path: Flags.string({ description: 'HTTP path: /exact, /prefix/* or a glob' }),
  header: keyValueFlag({ description: 'HTTP header that must match, name=value (repeatable)' }),
  source: Flags.string({ description: 'Client address match: an IP, a CIDR or a domain' }),
};

/** The flags of routeFlags, parsed. */
export interface RouteFlagValues {
  protocol?: string;
  host?: string;
  port?: number;
  path?: string;
  header?: Array<{ key: string; value: string }>;
  source?: string;
}

/** A Route (protobuf JSON) from route flags; fields not given are left out. */
export function routeFromFlags(
  flags: RouteFlagValues,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const route: Record<string, unknown> = { ...extra };
  if (flags.protocol) route.protocol = protocolEnum(flags.protocol);
  if (flags.host) route.destinationPattern = flags.host;
  if (flags.port !== undefined) route.destinationPort = flags.port;
  if (flags.path) route.pathPattern = flags.path;
  if (flags.header?.length) route.headers = toMap(flags.header);
  if (flags.source) route.sourcePattern = flags.source;
  return route;
}

const ENUM_FIELDS: Readonly<Record<string, string>> = {
  protocol: 'PROTOCOL_',
  module_type: 'MODULE_TYPE_',
  moduleType: 'MODULE_TYPE_',
  health_status: 'HEALTH_STATUS_',
  healthStatus: 'HEALTH_STATUS_',
  status: 'HEALTH_STATUS_',
};

/**
 * Lets files use the short enum words (`protocol: http`, `module_type: alb`): a string value
 * of a known enum field without its prefix gets it, upper-cased. Nested objects too.
 */
export function expandEnums(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(expandEnums);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const prefix = ENUM_FIELDS[key];
    if (prefix && typeof v === 'string' && v && !v.toUpperCase().startsWith(prefix)) {
      out[key] = `${prefix}${v.toUpperCase()}`;
    } else if (key === 'metadata' || key === 'headers' || key === 'labels' || key === 'context') {
      out[key] = v; // string maps: leave the values alone
    } else {
      out[key] = expandEnums(v);
    }
  }
  return out;
}

/** "5s", "3m", "2h", "4d" since `iso` (or "-" when unknown). */
export function age(iso: unknown, nowMs = Date.now()): string {
  if (typeof iso !== 'string' || !iso) return '-';
  const ms = nowMs - Date.parse(iso);
  if (!Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** A number with at most two decimals, for metric values. */
export function num(value: unknown): string {
  const n = typeof value === 'number' ? value : Number(value ?? 0);
  if (!Number.isFinite(n)) return String(value);
  return Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/\.?0+$/, '');
}

/** "yes"/"no". */
export const yesNo = (b: unknown) => (b ? 'yes' : 'no');

/** Seconds from a duration flag's milliseconds, at least 1. */
export const toSeconds = (ms: number) => Math.max(1, Math.round(ms / 1000));

/**
 * Runs `call`; a domain failure whose response lists validation_errors is re-thrown with
 * them in its one line, so the reason is visible without reading the printed response.
 */
export async function withValidationErrors<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    const errors = (e as { response?: { validationErrors?: unknown } }).response?.validationErrors;
    if (e instanceof CliFailure && Array.isArray(errors) && errors.length > 0) {
      const listed = errors.map(String).join('; ');
      if (!e.message.includes(listed)) {
        throw new CliFailure(`${e.message}: ${listed}`, e.exitCode, e.code, e.response);
      }
    }
    throw e;
  }
}
