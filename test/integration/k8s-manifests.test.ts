/**
 * deploy/kubernetes/*.yaml, validated without a cluster: every container's args parse as a real
 * mpctl command line (probes too), env names are ones the code reads, and the NLB config map
 * passes the NLB's process schema.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from '@oclif/core';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { NLB_ENV_MAP, nlbProcessSchema } from '../../services/nlb/main.js';
import { MODULE_ENV_MAP } from '../../services/modules/runtime/main.js';
import { REPO_ROOT, sourceConfig } from '../cli/support/oclif.js';

type Container = {
  args?: string[];
  env?: Array<{ name: string }>;
  readinessProbe?: { exec?: { command: string[] } };
};
type Doc = {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: { template?: { spec: { containers: Container[] } } };
};

const DIR = join(REPO_ROOT, 'deploy/kubernetes');
const docs: Doc[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => {
      expect(d.errors, f).toEqual([]);
      return d.toJS() as Doc;
    }),
  );
const containers = docs.flatMap((d) =>
  (d.spec?.template?.spec.containers ?? []).map((c) => ({ name: d.metadata.name, c })),
);

async function parseMpctl(argv: string[]) {
  const config = await sourceConfig();
  for (let n = argv.length; n > 0; n--) {
    const id = argv.slice(0, n).join(':');
    const found = argv.slice(0, n).some((a) => a.startsWith('-')) ? undefined : config.findCommand(id);
    if (!found) continue;
    const cmd = await found.load();
    // Files named by flags live in the container (config maps): check existence elsewhere.
    const flags = Object.fromEntries(
      Object.entries({ ...cmd.baseFlags, ...cmd.flags }).map(([k, f]) => [
        k,
        f.type === 'option' && 'exists' in f ? { ...f, exists: false } : f,
      ]),
    );
    return Parser.parse(argv.slice(n), { flags, args: cmd.args ?? {}, strict: true });
  }
  throw new Error(`${argv.join(' ')} is no mpctl command`);
}

describe('deploy/kubernetes', () => {
  it('has the NLB and a controller per module type, ALB in blue and green', () => {
    const deployments = docs.filter((d) => d.kind === 'Deployment').map((d) => d.metadata.name);
    expect(deployments.sort()).toEqual(['ailb', 'alb-blue', 'alb-green', 'alb-k8s', 'dblb', 'nlb', 'rtmp']);
  });

  it("every container's args and exec probe are valid mpctl command lines", async () => {
    for (const { name, c } of containers) {
      await expect(parseMpctl(c.args ?? []), name).resolves.toBeDefined();
      const probe = c.readinessProbe?.exec?.command;
      if (probe) {
        expect(probe[0]).toBe('mpctl');
        await expect(parseMpctl(probe.slice(1)), name).resolves.toBeDefined();
      }
    }
  });

  it('sets only env names the code reads, and the NLB config map passes the schema', () => {
    const known = new Set([...Object.keys(NLB_ENV_MAP), ...Object.keys(MODULE_ENV_MAP)]);
    for (const { name, c } of containers)
      for (const e of c.env ?? []) expect(known.has(e.name), `${name}: ${e.name}`).toBe(true);
    const secret = docs.find((d) => d.kind === 'Secret') as unknown as { stringData: Record<string, string> };
    for (const key of Object.keys(secret.stringData))
      expect(known.has(key) || key.startsWith('MPCTL_') || key === 'MP_MANAGER_API_KEY', key).toBe(true);
    const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'nlb-config')!;
    const parsed = nlbProcessSchema.safeParse(
      (parseAllDocuments(cm.data!['nlb.yaml'])[0].toJS() ?? {}) as unknown,
    );
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
  });
});
