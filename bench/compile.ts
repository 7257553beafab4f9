/**
 * Benchmarks run our code compiled, as the built `mpctl` would (tsx adds a helper call per
 * closure and ~40 MB of RSS). This compiles entry points with tsc into `outDir`, beside a copy of
 * package.json and links to proto/ and node_modules/, and returns the .js path of each entry.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Files the running code forks by path: tsc does not reach them through imports. */
const FORKED_BY_PATH = [
  'services/modules/runtime/providers/instance-child.ts',
  'services/nlb/dataplane/worker-main.ts',
];

/** Compiles `entries` (absolute .ts paths) and what they import; returns their .js paths. */
export async function compileForBench(outDir: string, entries: string[], what: string): Promise<string[]> {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  // The same settings as tsconfig.json, for these entry points; types are checked elsewhere.
  const args = [
    ...['--ignoreConfig', '--noCheck', '--outDir', outDir, '--rootDir', root, '--module', 'nodenext'],
    ...['--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--esModuleInterop'],
    ...['--resolveJsonModule', '--types', 'node', '--sourceMap', 'false'],
    ...entries,
    ...FORKED_BY_PATH.map((f) => join(root, f)),
  ];
  await promisify(execFile)(process.execPath, [tsc, ...args], { cwd: root, timeout: 300_000 }).catch(
    (e: { stdout?: string; message: string }) => {
      throw new Error(`compiling ${what} failed: ${e.stdout || e.message}`);
    },
  );
  copyFileSync(join(root, 'package.json'), join(outDir, 'package.json'));
  mkdirSync(join(outDir, 'proto'), { recursive: true });
  symlinkSync(join(root, 'proto', 'marchproxy'), join(outDir, 'proto', 'marchproxy'));
  symlinkSync(join(root, 'node_modules'), join(outDir, 'node_modules'));
  // The native relay's build (native/relay/build), found by walking up from the compiled file.
  if (existsSync(join(root, 'native'))) symlinkSync(join(root, 'native'), join(outDir, 'native'));
  return entries.map((e) => join(outDir, relative(root, e)).replace(/\.ts$/, '.js'));
}
