/**
 * CLI startup benchmark (`npm run bench:cli -- [--runs 15] [--warmup 2]`): starts a real NLB in
 * this process, then runs `node bin/run.js status --nlb <it>` and `node -e 0` interleaved, and
 * prints both medians and their ratio. `node -e 0` is the floor: what Node itself costs on this
 * machine right now, so the ratio stays comparable across machines and load.
 *
 * It measures the production path (bin/run.js, oclif.manifest.json, dist/), so build first:
 * `npm run build && npx oclif manifest`. A benchmark, not a test: nothing here fails on a slow
 * result (exit 1 only when a run fails).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { nlbProcessSchema, startNlb } from '../services/nlb/main.js';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '2' },
  },
});
const runs = Math.max(1, Number(values.runs));
const warmup = Math.max(0, Number(values.warmup));

for (const needed of ['oclif.manifest.json', 'dist/cli/commands/status.js']) {
  if (!existsSync(join(root, needed))) {
    console.error(`missing ${needed}: run \`npm run build && npx oclif manifest\` first`);
    process.exit(1);
  }
}

/** Wall time of one child process in milliseconds; it must exit 0. */
async function timeOne(args: string[]): Promise<number> {
  const started = performance.now();
  await run(process.execPath, args, { cwd: root, env: { ...process.env, NO_COLOR: '1' } });
  return performance.now() - started;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const nlb = await startNlb(
  nlbProcessSchema.parse({
    grpc: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    dataDir: '',
    logLevel: 'silent',
  }),
);
const address = `127.0.0.1:${nlb.grpcPort}`;
const subjects = [
  { label: 'mpctl status', args: [join(root, 'bin/run.js'), 'status', '--nlb', address] },
  { label: 'node -e 0', args: ['-e', '0'] },
];
const times = subjects.map(() => [] as number[]);
try {
  for (let i = 0; i < warmup; i++) for (const s of subjects) await timeOne(s.args);
  // Interleaved, so a burst of load elsewhere on the machine hits both alike.
  for (let i = 0; i < runs; i++) {
    for (const [j, s] of subjects.entries()) times[j].push(await timeOne(s.args));
  }
} finally {
  await nlb.stop();
}

const [cli, floor] = times.map(median);
console.log(`CLI startup, ${runs} runs each (interleaved, after ${warmup} warm-up runs), NLB at ${address}`);
for (const [j, s] of subjects.entries()) {
  const sorted = [...times[j]].sort((a, b) => a - b);
  console.log(
    `  ${s.label.padEnd(13)} median ${median(times[j]).toFixed(0).padStart(4)} ms   min ${sorted[0].toFixed(0).padStart(4)} ms   max ${sorted[sorted.length - 1].toFixed(0).padStart(4)} ms`,
  );
}
console.log(`  ratio         ${(cli / floor).toFixed(2)}x (mpctl status / node -e 0)`);
