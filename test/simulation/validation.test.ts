/**
 * Scenario files are validated before anything starts: every problem names the file, line and
 * column, and a misspelt field, kind or value gets a suggestion. `mpctl sim run` exits 2.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadScenarioFile, ScenarioError } from '../../simulator/index.js';
import { exitCodeOf, mpctl } from '../cli/support/oclif.js';

const dir = mkdtempSync(join(tmpdir(), 'mp-sim-validation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function problemsOf(path: string): string[] {
  try {
    loadScenarioFile(path);
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return (e as ScenarioError).problems;
  }
  throw new Error(`${path} was accepted`);
}

const TYPOS = `name: broken
duration: 10 min
modules:
  - type: ALB
    version: 1.0
    instances: 2
    scalling: { minInstances: 1 }
load:
  - type: ALB
    phases:
      - { shape: constnat, rps: 100 }
faults:
  - { kind: kil, at: 1m, type: ALB }
  - { kind: kill, at: 90, type: ALB, cout: 2 }
expect:
  - kind: instances
    typ: ALB
    min: 1
  - { kind: metric, metric: errorRte, max: 0.01 }
`;

const RULES = `duration: 10m
modules:
  - { type: ALB, version: "1.0", instances: 2 }
load:
  - type: DBLB
    phases: [{ shape: constant, rps: 10 }]
faults:
  - { kind: kill, at: 20m, type: ALB }
actions:
  - { kind: promote, at: 1m, type: ALB, version: "2.0" }
  - { kind: deploy, at: 2m, type: ALB, version: "2.0", instances: 1 }
  - { kind: promote, at: 3m, type: ALB, version: "3.0" }
expect:
  - { kind: instances, type: ALB }
`;

describe('scenario validation', () => {
  it('reports typos in fields, kinds and shapes, and bad durations, with file:line:col and a suggestion', () => {
    const f = write('typos.yaml', TYPOS);
    expect(problemsOf(f)).toEqual([
      `${f}:2:11: duration: invalid duration "10 min": use a number with a unit (ms, s, m, h, d), e.g. "250ms", "30s", "5m", "1h30m"`,
      `${f}:7:5: modules[0]: unknown field "scalling" (did you mean "scaling"?)`,
      `${f}:11:18: load[0].phases[0].shape: unknown shape "constnat" (did you mean "constant"?); use one of constant, ramp, steps, sine, csv`,
      `${f}:13:13: faults[0].kind: unknown kind "kil" (did you mean "kill"?); use one of kill, stopHeartbeats, slowHeartbeats, partition, errorRate, latency, restartNlb, failScale, slowStart`,
      `${f}:14:23: faults[1].at: invalid duration 90: missing a unit; use a number with a unit (ms, s, m, h, d), e.g. "90s" or "90m"`,
      `${f}:14:38: faults[1]: unknown field "cout" (did you mean "count"?)`,
      `${f}:17:5: expect[0]: unknown field "typ" (did you mean "type"?)`,
      `${f}:19:29: expect[1].metric: unknown metric "errorRte" (did you mean "errorRate"?); use one of offeredRps, servedRps, lostRps, errorRate, p99LatencyMs, cpuPercent, instances, healthyInstances, desiredInstances, weight, or nlb:<series> for a series of the NLB's metrics store (e.g. nlb:error_rate)`,
    ]);
  });

  it('checks the rules across fields: known modules and versions, times inside the run', () => {
    const f = write('rules.yaml', RULES);
    expect(problemsOf(f)).toEqual([
      `${f}:5:11: load[0].type: no DBLB module in this scenario (modules: ALB)`,
      `${f}:8:23: faults[0].at: 20m is after the end of the run (10m)`,
      `${f}:10:26: actions[0].at: ALB 2.0 is deployed only at 2m`,
      `${f}:12:50: actions[2].version: ALB has no version "3.0" (versions: 1.0, 2.0)`,
      `${f}:14:5: expect[0]: give min, max or both`,
    ]);
  });

  it('reports YAML syntax errors and bad CSV traces by line', () => {
    const yaml = write('syntax.yaml', 'duration: 10m\nmodules: [\n');
    expect(problemsOf(yaml)[0]).toMatch(new RegExp(`^${yaml}:3:1: `));
    write('trace.csv', 'time,rps\n0,100\n30s,abc\n1m,200\n');
    const csv = write(
      'csv.yaml',
      'duration: 10m\nmodules: [{ type: ALB, version: "1.0", instances: 1 }]\nload:\n  - type: ALB\n    phases: [{ shape: csv, file: trace.csv }]\n',
    );
    expect(problemsOf(csv)).toEqual([`${join(dir, 'trace.csv')}:3: rps "abc" is not a non-negative number`]);
  });

  it('keeps unquoted versions as written (1.10 is not 1.1)', () => {
    const f = write(
      'versions.yaml',
      'duration: 1m\nmodules:\n  - { type: alb, version: 1.10, instances: 1 }\n',
    );
    expect(loadScenarioFile(f).modules[0]).toMatchObject({ type: 'ALB', version: '1.10' });
  });

  it('makes `mpctl sim run` list the problems on stderr and exit 2', async () => {
    const f = write('typos-cli.yaml', TYPOS);
    const res = await mpctl(['sim', 'run', f]);
    expect(exitCodeOf(res)).toBe(2);
    expect(res.stderr).toContain(`${f}:7:5: modules[0]: unknown field "scalling" (did you mean "scaling"?)`);
    const json = await mpctl(['sim', 'run', f, '--json']);
    expect(exitCodeOf(json)).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({
      error: {
        code: 'INVALID_SCENARIO',
        exitCode: 2,
        problems: expect.arrayContaining([expect.stringContaining('did you mean "kill"?')]),
      },
    });
  });
});
