/**
 * Summarises a V8 sampling heap profile (.heapprofile, e.g. the NLB's from
 * `bench/control-plane.ts --heap-prof DIR`, which keeps allocations that outlived a scavenge):
 * bytes by allocating function (self) and by function on the stack (inclusive).
 *
 *   node --import tsx bench/heapprofile-top.ts DIR/nlb-heartbeats.heapprofile [--top 30]
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '30' } },
  allowPositionals: true,
});
if (positionals.length !== 1) {
  console.error('usage: node --import tsx bench/heapprofile-top.ts FILE.heapprofile [--top 30]');
  process.exit(2);
}
const top = Number(values.top);
const { head } = JSON.parse(readFileSync(positionals[0], 'utf8')) as { head: HeapNode };

function where(url: string): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  // The benchmark compiles the NLB into a temp dir (gone by now): show repository paths.
  const built = /\/mp-bench-cp-[^/]+\/build\/(.*)$/.exec(path);
  if (built) return built[1];
  return path.startsWith('/') ? relative(process.cwd(), path) : path;
}
const key = (n: HeapNode) => {
  const f = n.callFrame;
  const file = where(f.url);
  return `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
};

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
/** Returns the subtree's bytes; counts each function once per stack (recursion). */
function walk(n: HeapNode, onStack: Set<string>): number {
  const k = key(n);
  self.set(k, (self.get(k) ?? 0) + n.selfSize);
  total += n.selfSize;
  const fresh = !onStack.has(k);
  if (fresh) onStack.add(k);
  let bytes = n.selfSize;
  for (const c of n.children) bytes += walk(c, onStack);
  if (fresh) {
    onStack.delete(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + bytes);
  }
  return bytes;
}
walk(head, new Set());

const mb = (n: number) => (n / (1024 * 1024)).toFixed(2).padStart(8);
const pct = (n: number) => ((n / Math.max(1, total)) * 100).toFixed(1).padStart(5);
const list = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${mb(v)} MB  ${pct(v)} %  ${k}`);
};
console.log(`sampled ${mb(total).trim()} MB`);
list('allocated by (self)', self);
list('allocated under (inclusive)', inclusive);
