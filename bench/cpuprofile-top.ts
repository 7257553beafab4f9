/**
 * Summarises a V8 .cpuprofile (e.g. the NLB's, from `bench/control-plane.ts --cpu-prof DIR`):
 * the functions with the most self time and the most inclusive time, and self time by package.
 *
 *   node --import tsx bench/cpuprofile-top.ts DIR/CPU.*.cpuprofile [--top 30] [--match path]
 *
 * --match keeps the inclusive list to functions whose file contains `path` (e.g. services/).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '30' }, match: { type: 'string' } },
  allowPositionals: true,
});
if (positionals.length !== 1) {
  console.error(
    'usage: node --import tsx bench/cpuprofile-top.ts FILE.cpuprofile [--top 30] [--match services/]',
  );
  process.exit(2);
}
const top = Number(values.top);
const profile = JSON.parse(readFileSync(positionals[0], 'utf8')) as Profile;

const byId = new Map<number, ProfileNode>();
const parent = new Map<number, number>();
for (const n of profile.nodes) byId.set(n.id, n);
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const cwd = process.cwd();
function where(url: string): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  // The benchmark compiles the NLB into a temp dir (gone by now): show repository paths.
  const built = /\/mp-bench-(?:cp|dp)-[^/]+\/build\/(.*)$/.exec(path);
  if (built) return built[1];
  return path.startsWith('/') ? relative(cwd, path) : path;
}
function key(n: ProfileNode): string {
  const f = n.callFrame;
  const file = where(f.url);
  return `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
}
function packageOf(n: ProfileNode): string {
  const file = where(n.callFrame.url);
  if (!file) return n.callFrame.functionName || '(native)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  if (m) return m[1];
  if (file.startsWith('node:')) return 'node internals';
  const dir = file.split('/').slice(0, 3).join('/');
  return dir;
}

// Sample intervals: timeDeltas[i] is the time before sample i.
const self = new Map<string, number>();
const inclusive = new Map<string, number>();
const packages = new Map<string, number>();
let totalUs = 0;
let idleUs = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
  const node = byId.get(profile.samples[i]);
  if (!node) continue;
  totalUs += dt;
  if (node.callFrame.functionName === '(idle)') {
    idleUs += dt;
    continue;
  }
  const k = key(node);
  self.set(k, (self.get(k) ?? 0) + dt);
  const pkg = packageOf(node);
  packages.set(pkg, (packages.get(pkg) ?? 0) + dt);
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(root)') break;
    const nk = key(n);
    if (seen.has(nk)) continue;
    seen.add(nk);
    inclusive.set(nk, (inclusive.get(nk) ?? 0) + dt);
  }
}

const busyUs = totalUs - idleUs;
const pct = (us: number) => `${((us / busyUs) * 100).toFixed(1).padStart(5)} %`;
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
const list = (title: string, m: Map<string, number>, filter: (k: string) => boolean = () => true) => {
  console.log(`\n${title}`);
  for (const [k, us] of [...m]
    .filter(([k]) => filter(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)) {
    console.log(`${ms(us)} ${pct(us)}  ${k}`);
  }
};

console.log(
  `profile: ${(totalUs / 1e6).toFixed(1)} s sampled, ${(busyUs / 1e6).toFixed(1)} s busy (percentages are of busy time)`,
);
list('self time by package / directory', packages);
list('self time by function', self);
list(
  `inclusive time by function${values.match ? ` (files containing ${values.match})` : ''}`,
  inclusive,
  (k) => !values.match || k.includes(values.match),
);
