import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listRpcs } from '../../cli/rpc-registry.js';
import { rpcCoverage } from './support/manifest.js';
import { REPO_ROOT, sourceRootPlugin } from './support/oclif.js';

type ManifestCommand = Record<string, unknown> & { relativePath?: string[]; rpc?: unknown; rpcs?: unknown };
type Manifest = { version: string; commands: Record<string, ManifestCommand> };

const MANIFEST = join(REPO_ROOT, 'oclif.manifest.json');
const REGENERATE = 'stale oclif.manifest.json: run `npm run build && npx oclif manifest` and commit it';

/** The manifest oclif builds from the TypeScript sources right now. */
async function freshManifest(): Promise<Manifest> {
  return JSON.parse(JSON.stringify((await sourceRootPlugin()).manifest)) as Manifest;
}

/** A command entry without where its file is (dist/*.js when committed, cli/*.ts from source). */
function withoutLocation({ relativePath: _path, isESM: _esm, ...rest }: ManifestCommand) {
  return rest;
}

describe('oclif.manifest.json', () => {
  it('is committed', () => {
    expect(existsSync(MANIFEST), REGENERATE).toBe(true);
  });

  it('matches the commands in cli/commands', async () => {
    const committed = JSON.parse(readFileSync(MANIFEST, 'utf8')) as Manifest;
    const fresh = await freshManifest();
    expect(Object.keys(committed.commands).sort(), REGENERATE).toEqual(Object.keys(fresh.commands).sort());
    expect(committed.version, REGENERATE).toBe(fresh.version);
    for (const [id, command] of Object.entries(fresh.commands)) {
      expect(withoutLocation(committed.commands[id]), `${REGENERATE} (command ${id})`).toEqual(
        withoutLocation(command),
      );
      // Built from dist/, so production never needs the sources.
      const source = command.relativePath ?? [];
      expect(committed.commands[id].relativePath).toEqual([
        'dist',
        ...source.map((p) => p.replace(/\.tsx?$/, '.js')),
      ]);
    }
  });

  it('shows which RPC each command covers', async () => {
    const known = new Set(listRpcs().map((r) => r.fullName));
    const { commands } = await freshManifest();
    expect(commands.call.rpcs).toBe('*');
    for (const [id, command] of Object.entries(commands)) {
      if (command.rpc !== undefined)
        expect(known, `${id} declares rpc ${JSON.stringify(command.rpc)}`).toContain(command.rpc);
    }
  });

  it('covers every NLBService RPC with a command', async () => {
    const nlbRpcs = listRpcs()
      .filter((r) => r.service === 'marchproxy.NLBService')
      .map((r) => r.fullName);
    expect(nlbRpcs).toHaveLength(21);
    const covered = rpcCoverage(await freshManifest());
    expect(nlbRpcs.filter((rpc) => !covered.has(rpc))).toEqual([]);
  });

  it('commits a manifest that covers every NLBService RPC too', () => {
    const committed = JSON.parse(readFileSync(MANIFEST, 'utf8')) as Manifest;
    const covered = rpcCoverage(committed);
    const missing = listRpcs()
      .filter((r) => r.service === 'marchproxy.NLBService' && !covered.has(r.fullName))
      .map((r) => r.fullName);
    expect(missing, REGENERATE).toEqual([]);
  });

  it('covers every ModuleService RPC with a command', async () => {
    const moduleRpcs = listRpcs()
      .filter((r) => r.service === 'marchproxy.ModuleService')
      .map((r) => r.fullName);
    expect(moduleRpcs).toHaveLength(25);
    const covered = rpcCoverage(await freshManifest());
    expect(moduleRpcs.filter((rpc) => !covered.has(rpc))).toEqual([]);
  });

  it('commits a manifest that covers every ModuleService RPC too', () => {
    const committed = JSON.parse(readFileSync(MANIFEST, 'utf8')) as Manifest;
    const covered = rpcCoverage(committed);
    const missing = listRpcs()
      .filter((r) => r.service === 'marchproxy.ModuleService' && !covered.has(r.fullName))
      .map((r) => r.fullName);
    expect(missing, REGENERATE).toEqual([]);
  });
});
