/**
 * Summarises a V8 .heapsnapshot (e.g. the NLB's, from `bench/control-plane.ts --heap-snapshot
 * DIR`): objects grouped by kind and constructor, with their count and self size, largest first.
 * Self size only (no dominator tree): enough to see which objects fill the heap and how many
 * there are per instance.
 *
 *   node --import tsx bench/heapsnapshot-top.ts DIR/nlb-end.heapsnapshot [--top 40]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '40' } },
  allowPositionals: true,
});
if (positionals.length !== 1) {
  console.error('usage: node --import tsx bench/heapsnapshot-top.ts FILE.heapsnapshot [--top 40]');
  process.exit(2);
}
const top = Number(values.top);
const snap = JSON.parse(readFileSync(positionals[0], 'utf8')) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const types = snap.snapshot.meta.node_types[0];
const width = fields.length;
const TYPE = fields.indexOf('type');
const NAME = fields.indexOf('name');
const SIZE = fields.indexOf('self_size');

/** Groups: strings and code by kind only (their names are their contents), objects by constructor. */
const groups = new Map<string, { count: number; bytes: number }>();
let total = 0;
let nodes = 0;
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + TYPE]];
  const bytes = snap.nodes[i + SIZE];
  const named = type === 'object' || type === 'closure' || type === 'native' || type === 'hidden';
  const name = named ? `${type} ${snap.strings[snap.nodes[i + NAME]].slice(0, 80)}` : type;
  const g = groups.get(name) ?? { count: 0, bytes: 0 };
  g.count++;
  g.bytes += bytes;
  groups.set(name, g);
  total += bytes;
  nodes++;
}

const mb = (n: number) => (n / (1024 * 1024)).toFixed(2).padStart(8);
console.log(`${nodes.toLocaleString('en-US')} objects, ${mb(total).trim()} MB self size in all\n`);
console.log('      MB       %      count  kind / constructor');
for (const [name, g] of [...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) {
  const pct = ((g.bytes / total) * 100).toFixed(1).padStart(5);
  console.log(`${mb(g.bytes)}  ${pct} %  ${String(g.count).padStart(9)}  ${name}`);
}
