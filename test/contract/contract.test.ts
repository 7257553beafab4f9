import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bufBin, bufImage, checkContract, publicContract, repoRoot } from './contract-check.js';

const temps: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'mp-contract-'));
  temps.push(d);
  return d;
};
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of the repo's buf module (buf.yaml + proto/marchproxy) in a temp dir. */
function protoCopy(): string {
  const d = tempDir();
  cpSync(join(repoRoot, 'buf.yaml'), join(d, 'buf.yaml'));
  cpSync(join(repoRoot, 'proto', 'marchproxy'), join(d, 'proto', 'marchproxy'), { recursive: true });
  return d;
}

function edit(file: string, from: string, to: string) {
  const src = readFileSync(file, 'utf8');
  expect(src).toContain(from);
  writeFileSync(file, src.replace(from, to));
}

const walk = (d: string): string[] =>
  readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));

describe('the gRPC contract', () => {
  it('has 21 NLBService and 25 ModuleService RPCs', () => {
    const count = (f: string) =>
      (readFileSync(join(repoRoot, 'proto/marchproxy', f), 'utf8').match(/^\s*rpc /gm) ?? []).length;
    expect(count('nlb.proto')).toBe(21);
    expect(count('module.proto')).toBe(25);
  });

  it('is wire-compatible with the public MarchProxy definitions', () => {
    expect(checkContract(publicContract(), bufImage(repoRoot))).toEqual([]);
  });

  it('catches a renumbered, retyped or missing field, enum value or RPC', () => {
    const d = protoCopy();
    const types = join(d, 'proto/marchproxy/types.proto');
    edit(types, 'string address = 3;', 'string address = 30;');
    edit(types, 'int32 priority = 9;', 'int64 priority = 9;');
    edit(types, 'HEALTH_STATUS_STOPPED = 6;', 'HEALTH_STATUS_STOPPED = 7;');
    edit(
      join(d, 'proto/marchproxy/nlb.proto'),
      'rpc GetNLBStatus(GetNLBStatusRequest) returns (GetNLBStatusResponse);',
      '',
    );
    const problems = checkContract(publicContract(), bufImage(d));
    expect(problems).toEqual(
      expect.arrayContaining([
        'ModuleInstance.address is field 30, the contract says 3',
        'Route.priority is int64, the contract says int32',
        'enum HealthStatus: HEALTH_STATUS_STOPPED is 7, the contract says 6',
        'rpc NLBService.GetNLBStatus is missing',
      ]),
    );
  });

  it('passes buf lint', () => {
    const r = spawnSync(bufBin, ['lint'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('buf breaking fails on a renumbered field', () => {
    const d = protoCopy();
    edit(join(d, 'proto/marchproxy/types.proto'), 'string version = 9;', 'string version = 19;');
    const r = spawnSync(bufBin, ['breaking', '--against', repoRoot], {
      cwd: d,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain('ModuleInstance');
  });

  it('has no breaking change against the previous commit', () => {
    const git = (...args: string[]) =>
      spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
    const prev = git('rev-parse', '--verify', '--quiet', 'HEAD~1');
    const hasProtos =
      prev.status === 0 && git('cat-file', '-e', 'HEAD~1:proto/marchproxy/nlb.proto').status === 0;
    if (!hasProtos) return; // the first commit with protos has nothing to break
    const r = spawnSync(bufBin, ['breaking', '--against', '.git#ref=HEAD~1'], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('generated code in proto/gen matches a fresh generation', () => {
    const out = tempDir();
    execFileSync(process.execPath, [join(repoRoot, 'scripts/gen.mjs'), '--out', out], {
      timeout: 120_000,
      stdio: 'pipe',
    });
    const fresh = join(out, 'proto/gen');
    const committed = join(repoRoot, 'proto/gen');
    const names = (d: string) =>
      walk(d)
        .map((f) => relative(d, f))
        .sort();
    expect(names(committed)).toEqual(names(fresh));
    for (const name of names(fresh)) {
      const same = readFileSync(join(fresh, name), 'utf8') === readFileSync(join(committed, name), 'utf8');
      expect(same, `proto/gen/${name} is stale: run npm run gen and commit the result`).toBe(true);
    }
  });
});
