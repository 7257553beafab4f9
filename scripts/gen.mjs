#!/usr/bin/env node
// Regenerates proto/gen from proto/marchproxy with buf + ts-proto (buf.gen.yaml).
//
//   node scripts/gen.mjs            writes proto/gen (npm run gen)
//   node scripts/gen.mjs --out DIR  writes DIR/proto/gen instead (the freshness check)
//
// One fix-up follows generation: ts-proto 2.18 writes `Timestamp.fromJSON` in the
// fromJsonTimestamp helper by plain name, which in types.ts resolves to our own
// `marchproxy.Timestamp` message (part of the public contract) instead of the imported
// google.protobuf.Timestamp (`Timestamp1` there). We point it at the import.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outIdx = process.argv.indexOf('--out');
const base = outIdx > 0 ? process.argv[outIdx + 1] : undefined;
const buf = join(root, 'node_modules', '.bin', 'buf');
const env = { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` };
execFileSync(buf, ['generate', ...(base ? ['-o', base] : [])], { cwd: root, stdio: 'inherit', env });

const genDir = join(base ?? root, 'proto', 'gen');
const walk = (d) =>
  readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
for (const file of walk(genDir).filter((f) => f.endsWith('.ts'))) {
  const src = readFileSync(file, 'utf8');
  if (!/import \{[^}]*\bTimestamp as Timestamp1\b/.test(src)) continue;
  if (!/^export const Timestamp: MessageFns<Timestamp>/m.test(src)) continue;
  const fixed = src.replace('fromTimestamp(Timestamp.fromJSON(o))', 'fromTimestamp(Timestamp1.fromJSON(o))');
  if (fixed !== src) writeFileSync(file, fixed);
}
