/**
 * Compares a buf image (FileDescriptorSet as JSON) with the public contract listed in
 * public-contract.txt, and returns every difference as a line a person can act on.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..');
export const bufBin = join(repoRoot, 'node_modules', '.bin', 'buf');

interface FieldDesc {
  name: string;
  number: number;
  label?: string;
  type: string;
  typeName?: string;
}
interface MessageDesc {
  name: string;
  field?: FieldDesc[];
  nestedType?: MessageDesc[];
  options?: { mapEntry?: boolean };
}
interface EnumDesc {
  name: string;
  value: Array<{ name: string; number: number }>;
}
interface MethodDesc {
  name: string;
  inputType: string;
  outputType: string;
  serverStreaming?: boolean;
  clientStreaming?: boolean;
}
interface FileDesc {
  name: string;
  package?: string;
  messageType?: MessageDesc[];
  enumType?: EnumDesc[];
  service?: Array<{ name: string; method?: MethodDesc[] }>;
}
export interface Image {
  file: FileDesc[];
}

/** Builds the buf image of the module rooted at `dir` (a directory with buf.yaml). */
export function bufImage(dir: string): Image {
  const out = execFileSync(bufBin, ['build', '-o', '-#format=json'], { cwd: dir, timeout: 60_000 });
  return JSON.parse(out.toString('utf8')) as Image;
}

const SCALARS: Record<string, string> = {
  TYPE_STRING: 'string',
  TYPE_INT32: 'int32',
  TYPE_INT64: 'int64',
  TYPE_BOOL: 'bool',
  TYPE_DOUBLE: 'double',
  TYPE_BYTES: 'bytes',
  TYPE_FLOAT: 'float',
  TYPE_UINT32: 'uint32',
  TYPE_UINT64: 'uint64',
};

function shortName(typeName: string): string {
  if (typeName === '.google.protobuf.Timestamp') return 'ts';
  return typeName.replace(/^\.marchproxy\./, '');
}

/** Renders a descriptor field in the spec's notation, e.g. "[]Route" or "map<string,int32>". */
function renderType(f: FieldDesc, msg: MessageDesc): string {
  const base = (g: FieldDesc) => SCALARS[g.type] ?? shortName(g.typeName ?? '?');
  if (f.label === 'LABEL_REPEATED' && f.typeName) {
    const entryName = f.typeName.split('.').pop();
    const entry = msg.nestedType?.find((n) => n.name === entryName && n.options?.mapEntry);
    if (entry?.field) {
      const [k, v] = entry.field;
      return `map<${base(k)},${base(v)}>`;
    }
  }
  return (f.label === 'LABEL_REPEATED' ? '[]' : '') + base(f);
}

/** Checks an image against the spec text; returns problems (empty when compatible). */
export function checkContract(spec: string, image: Image): string[] {
  const problems: string[] = [];
  const files = image.file.filter((f) => f.package === 'marchproxy');
  const messages = new Map(files.flatMap((f) => (f.messageType ?? []).map((m) => [m.name, m] as const)));
  const enums = new Map(files.flatMap((f) => (f.enumType ?? []).map((e) => [e.name, e] as const)));
  const services = new Map(files.flatMap((f) => (f.service ?? []).map((s) => [s.name, s] as const)));
  const specRpcs = new Set<string>();

  for (const raw of spec.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('enum ')) {
      const [, name, values] = /^enum (\w+):\s*(.*)$/.exec(line) ?? [];
      const e = enums.get(name);
      if (!e) {
        problems.push(`enum ${name} is missing`);
        continue;
      }
      values.split(/\s+/).forEach((v, i) => {
        const got = e.value.find((x) => x.name === v);
        if (!got) problems.push(`enum ${name}: value ${v} is missing`);
        else if (got.number !== i)
          problems.push(`enum ${name}: ${v} is ${got.number}, the contract says ${i}`);
      });
      continue;
    }
    if (line.startsWith('rpc ')) {
      const [, svc, method, flag] = /^rpc (\w+)\.(\w+)(?:\s+(\w+))?$/.exec(line) ?? [];
      specRpcs.add(`${svc}.${method}`);
      const m = services.get(svc)?.method?.find((x) => x.name === method);
      if (!m) {
        problems.push(`rpc ${svc}.${method} is missing`);
        continue;
      }
      if (m.inputType !== `.marchproxy.${method}Request`)
        problems.push(`rpc ${svc}.${method} takes ${m.inputType}`);
      if (m.outputType !== `.marchproxy.${method}Response`)
        problems.push(`rpc ${svc}.${method} returns ${m.outputType}`);
      if (Boolean(m.serverStreaming) !== (flag === 'stream')) {
        problems.push(`rpc ${svc}.${method}: server streaming is ${Boolean(m.serverStreaming)}`);
      }
      if (m.clientStreaming) problems.push(`rpc ${svc}.${method} must not stream from the client`);
      continue;
    }
    const [, name, body] = /^(\w+):\s*(.*)$/.exec(line) ?? [];
    if (!name) {
      problems.push(`spec line not understood: ${line}`);
      continue;
    }
    const msg = messages.get(name);
    if (!msg) {
      problems.push(`message ${name} is missing`);
      continue;
    }
    const wanted = body ? body.split(',').map((s) => s.trim().split(/\s+/)) : [];
    // map<k,v> contains a comma: re-join pieces that were split inside angle brackets.
    const fields: Array<[string, string]> = [];
    for (const parts of wanted) {
      const prev = fields[fields.length - 1];
      if (parts.length === 1 && prev && prev[1].includes('<') && !prev[1].includes('>'))
        prev[1] += `,${parts[0]}`;
      else fields.push([parts[0], parts[1]]);
    }
    fields.forEach(([fname, ftype], i) => {
      const number = i + 1;
      const f = msg.field?.find((x) => x.name === fname);
      if (!f) return problems.push(`${name}.${fname} (field ${number}) is missing`);
      if (f.number !== number)
        problems.push(`${name}.${fname} is field ${f.number}, the contract says ${number}`);
      const got = renderType(f, msg);
      if (got !== ftype) problems.push(`${name}.${fname} is ${got}, the contract says ${ftype}`);
    });
  }
  for (const [svcName, svc] of services) {
    for (const m of svc.method ?? []) {
      if (!specRpcs.has(`${svcName}.${m.name}`))
        problems.push(`rpc ${svcName}.${m.name} is not in the contract`);
    }
  }
  return problems;
}

/** The spec text shipped beside this file. */
export const publicContract = () => readFileSync(join(import.meta.dirname, 'public-contract.txt'), 'utf8');
