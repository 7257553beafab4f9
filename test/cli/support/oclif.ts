/**
 * oclif test plumbing. A present oclif.manifest.json makes oclif import commands from the
 * compiled dist/ (stale or missing while developing), so tests load the root plugin with
 * ignoreManifest: commands then come from cli/commands through tsx, as bin/dev.js does.
 */
import { fileURLToPath } from 'node:url';
import { Config, Plugin } from '@oclif/core';
import { captureOutput, runCommand } from '@oclif/test';

/** The repository root (where package.json is). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

type Loaded = { config: Config; rootPlugin: Plugin };
let loading: Promise<Loaded> | undefined;

function load(): Promise<Loaded> {
  loading ??= (async () => {
    // oclif warns once that rootDir "." hides the source path (it then uses the path it has,
    // which is the source); keep that note out of the first test's stderr.
    const { result, error } = await captureOutput<Loaded>(async () => {
      const rootPlugin = new Plugin({ root: REPO_ROOT, isRoot: true, ignoreManifest: true });
      await rootPlugin.load();
      const config = await Config.load({
        root: REPO_ROOT,
        plugins: new Map([[rootPlugin.name, rootPlugin]]),
      });
      return { config, rootPlugin };
    });
    if (error || !result) throw error ?? new Error('oclif config did not load');
    return result;
  })();
  return loading;
}

/** An oclif Config whose commands are the TypeScript sources (shared by a test file). */
export async function sourceConfig(): Promise<Config> {
  return (await load()).config;
}

/** The root plugin loaded from source; its `manifest` is what `oclif manifest` would write now. */
export async function sourceRootPlugin(): Promise<Plugin> {
  return (await load()).rootPlugin;
}

/**
 * Runs `mpctl <argv…>` in-process from source. runCommand joins and re-splits argv on
 * whitespace and strips edge quotes, so items with those are refused rather than mangled.
 */
export async function mpctl(argv: string[]) {
  const mangled = argv.find((a) => /\s/.test(a) || /^"|"$/.test(a));
  if (mangled !== undefined)
    throw new Error(`runCommand would re-split or unquote ${JSON.stringify(mangled)}`);
  return runCommand(argv, await sourceConfig());
}

/** The exit code a runCommand result stands for (0 when nothing was thrown). */
export function exitCodeOf(result: { error?: Error & { oclif?: { exit?: number } } }): number {
  return result.error ? (result.error.oclif?.exit ?? 1) : 0;
}
