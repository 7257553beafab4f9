/**
 * Checks request JSON against the .proto contract before it is sent. ts-proto's `fromJSON`
 * silently drops unknown keys and coerces wrong types ("false" becomes true), which turns a
 * typo into a request that does something else; this check turns it into a usage error.
 * The descriptors come from the .proto files through @grpc/proto-loader (keepCase), so both
 * the proto names (interval_seconds) and their JSON names (intervalSeconds) are known.
 */
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { closestMatches, didYouMean } from './suggest.js';

/** The .proto files that define the two services, relative to the proto root. */
export const CONTRACT_PROTO_FILES: readonly string[] = ['marchproxy/nlb.proto', 'marchproxy/module.proto'];

/** Validates request JSON for a message type. */
export interface RequestSchema {
  /** Problems with `value` as the JSON form of message `typeName`; empty when it is fine. */
  check(typeName: string, value: unknown): string[];
}

// The subset of google.protobuf descriptors (as proto-loader renders them) used here.
interface FieldDescriptor {
  name: string;
  label: string;
  type: string;
  typeName: string;
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
  enumType: EnumDescriptor[];
  options: { mapEntry?: boolean } | null;
}
interface EnumDescriptor {
  name: string;
  value: { name: string; number: number }[];
}
type Resolved =
  { kind: 'message'; desc: MessageDescriptor; fullName: string } | { kind: 'enum'; desc: EnumDescriptor };

const MAX_PROBLEMS = 5;
const INTEGER_TYPES = new Set([
  'TYPE_INT32',
  'TYPE_INT64',
  'TYPE_UINT32',
  'TYPE_UINT64',
  'TYPE_SINT32',
  'TYPE_SINT64',
  'TYPE_FIXED32',
  'TYPE_FIXED64',
  'TYPE_SFIXED32',
  'TYPE_SFIXED64',
]);

/** lower_snake → lowerCamel, the protobuf JSON name rule. */
export function jsonName(protoName: string): string {
  return protoName.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`);

function checkScalar(type: string, value: unknown): string | undefined {
  if (type === 'TYPE_STRING') return typeof value === 'string' ? undefined : 'a string';
  if (type === 'TYPE_BOOL') return typeof value === 'boolean' ? undefined : 'true or false';
  if (type === 'TYPE_BYTES') {
    return typeof value === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value)
      ? undefined
      : 'a base64 string';
  }
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (INTEGER_TYPES.has(type)) {
    return typeof n === 'number' && Number.isInteger(n) ? undefined : 'an integer';
  }
  const special = typeof value === 'string' && ['NaN', 'Infinity', '-Infinity'].includes(value);
  return special || (typeof n === 'number' && !Number.isNaN(n)) ? undefined : 'a number';
}

function checkTimestamp(value: unknown): string | undefined {
  if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) return undefined;
  if (isPlainObject(value) && Object.keys(value).every((k) => k === 'seconds' || k === 'nanos'))
    return undefined;
  return 'an RFC 3339 timestamp such as "2024-05-01T12:00:00Z"';
}

class DescriptorSchema implements RequestSchema {
  constructor(private readonly definitions: PackageDefinition) {}

  check(typeName: string, value: unknown): string[] {
    const root = this.lookup(typeName);
    if (root?.kind !== 'message') return [`no message type ${typeName} in the contract`];
    const problems: string[] = [];
    if (!isPlainObject(value)) return [`the request must be a JSON object, got ${describe(value)}`];
    this.checkMessage(root.desc, root.fullName, value, '', problems);
    return problems.slice(0, MAX_PROBLEMS);
  }

  private lookup(fullName: string): Resolved | undefined {
    const def = this.definitions[fullName] as { format?: string; type?: unknown } | undefined;
    if (def?.format === 'Protocol Buffer 3 DescriptorProto') {
      return { kind: 'message', desc: def.type as MessageDescriptor, fullName };
    }
    if (def?.format === 'Protocol Buffer 3 EnumDescriptorProto') {
      return { kind: 'enum', desc: def.type as EnumDescriptor };
    }
    return undefined;
  }

  /** Resolves a field's typeName as protobufjs renders it: nested, package-relative or absolute. */
  private resolve(typeName: string, scope: MessageDescriptor, scopeName: string): Resolved | undefined {
    const name = typeName.replace(/^\./, '');
    const nested = scope.nestedType.find((t) => t.name === name);
    if (nested) return { kind: 'message', desc: nested, fullName: `${scopeName}.${name}` };
    const nestedEnum = scope.enumType.find((t) => t.name === name);
    if (nestedEnum) return { kind: 'enum', desc: nestedEnum };
    const pkg = scopeName.split('.')[0];
    return this.lookup(name) ?? this.lookup(`${pkg}.${name}`) ?? this.lookup(`${scopeName}.${name}`);
  }

  private checkMessage(
    desc: MessageDescriptor,
    fullName: string,
    value: Record<string, unknown>,
    path: string,
    problems: string[],
  ): void {
    for (const [key, fieldValue] of Object.entries(value)) {
      if (problems.length >= MAX_PROBLEMS) return;
      const field = desc.field.find((f) => f.name === key || jsonName(f.name) === key);
      const where = path ? `${path}.${key}` : key;
      if (!field) {
        problems.push(unknownField(desc, fullName, key, where));
        continue;
      }
      if (fieldValue === null) continue; // protobuf JSON: null means "the default".
      this.checkField(field, desc, fullName, fieldValue, where, problems);
    }
  }

  private checkField(
    field: FieldDescriptor,
    scope: MessageDescriptor,
    scopeName: string,
    value: unknown,
    where: string,
    problems: string[],
  ): void {
    const resolved = field.typeName ? this.resolve(field.typeName, scope, scopeName) : undefined;
    if (resolved?.kind === 'message' && resolved.desc.options?.mapEntry) {
      if (!isPlainObject(value))
        return void problems.push(`"${where}" must be a JSON object (a map), got ${describe(value)}`);
      const valueField = resolved.desc.field.find((f) => f.name === 'value');
      if (!valueField) return;
      for (const [k, v] of Object.entries(value)) {
        this.checkSingle(valueField, resolved.desc, resolved.fullName, v, `${where}.${k}`, problems);
      }
      return;
    }
    if (field.label === 'LABEL_REPEATED') {
      if (!Array.isArray(value))
        return void problems.push(`"${where}" must be a JSON array, got ${describe(value)}`);
      value.forEach((item, i) => this.checkSingle(field, scope, scopeName, item, `${where}[${i}]`, problems));
      return;
    }
    this.checkSingle(field, scope, scopeName, value, where, problems);
  }

  private checkSingle(
    field: FieldDescriptor,
    scope: MessageDescriptor,
    scopeName: string,
    value: unknown,
    where: string,
    problems: string[],
  ): void {
    if (field.type === 'TYPE_MESSAGE') {
      if (field.typeName.replace(/^\./, '') === 'google.protobuf.Timestamp') {
        const expected = checkTimestamp(value);
        if (expected) problems.push(`"${where}" must be ${expected}, got ${JSON.stringify(value)}`);
        return;
      }
      const resolved = this.resolve(field.typeName, scope, scopeName);
      if (resolved?.kind !== 'message') return; // A type this check does not know: let the server judge.
      if (!isPlainObject(value))
        return void problems.push(`"${where}" must be a JSON object, got ${describe(value)}`);
      this.checkMessage(resolved.desc, resolved.fullName, value, where, problems);
      return;
    }
    if (field.type === 'TYPE_ENUM') {
      const resolved = this.resolve(field.typeName, scope, scopeName);
      if (resolved?.kind === 'enum') {
        const problem = checkEnum(resolved.desc, value, where);
        if (problem) problems.push(problem);
      }
      return;
    }
    const expected = checkScalar(field.type, value);
    if (expected) problems.push(`"${where}" must be ${expected}, got ${JSON.stringify(value)}`);
  }
}

function unknownField(desc: MessageDescriptor, fullName: string, key: string, where: string): string {
  const names = desc.field.map((f) => f.name);
  const candidates = [...new Set([...names, ...names.map(jsonName)])];
  const hint = didYouMean(closestMatches(key, candidates, 1));
  const known = names.length ? `known fields: ${names.join(', ')}` : `${fullName} has no fields`;
  return `unknown field "${where}" in ${fullName};${hint || ` ${known}`}`;
}

function checkEnum(desc: EnumDescriptor, value: unknown, where: string): string | undefined {
  if (typeof value === 'number' && desc.value.some((v) => v.number === value)) return undefined;
  if (typeof value === 'string' && desc.value.some((v) => v.name === value)) return undefined;
  const names = desc.value.map((v) => v.name);
  // Values carry their enum's prefix (HEALTH_STATUS_HEALTHY); "HEALTHY" means the one ending so.
  const suffixed = names.filter((n) => typeof value === 'string' && n.endsWith(`_${value.toUpperCase()}`));
  const hint =
    typeof value !== 'string' ? '' : didYouMean(suffixed.length ? suffixed : closestMatches(value, names, 2));
  const expected = hint ? `a ${desc.name} value` : `one of ${names.join(', ')}`;
  return `"${where}" must be ${expected}, got ${JSON.stringify(value)}${hint ? `;${hint}` : ''}`;
}

const schemas = new Map<string, RequestSchema>();

/** Loads (once per proto root) the contract's descriptors from `protoRoot` (the repo's proto/ dir). */
export function loadRequestSchema(protoRoot: string): RequestSchema {
  let schema = schemas.get(protoRoot);
  if (!schema) {
    const definitions = loadSync([...CONTRACT_PROTO_FILES], { includeDirs: [protoRoot], keepCase: true });
    schema = new DescriptorSchema(definitions);
    schemas.set(protoRoot, schema);
  }
  return schema;
}
