/**
 * `mpctl metrics|health|status|config|rebalance|load|scale|deployment …` against a real NLB
 * started in-process, with a fake module controller behind the ALB 1.0 instance.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeOf, mpctl } from './support/oclif.js';
import { startFakeController, startRealNlb, type FakeController, type RealNlb } from './support/real-nlb.js';
import { closedPort } from './support/test-nlb.js';

let nlb: RealNlb;
let controller: FakeController;
let dir: string;
const at = () => ['--nlb', nlb.address];

beforeAll(async () => {
  nlb = await startRealNlb();
  controller = await startFakeController();
  dir = mkdtempSync(join(tmpdir(), 'mpctl-nlb-ops-'));
  await nlb.register('alb-1', controller.address);
  await nlb.register('alb-2', `127.0.0.1:${await closedPort()}`, { version: '2.0' });
});

afterAll(async () => {
  await nlb.close();
  await controller.close();
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('mpctl metrics', () => {
  it('report stores samples from a file; module shows them as a series table', async () => {
    const path = file(
      'samples.yaml',
      '- {name: requests_total, value: 42, labels: {route: web}}\n- {name: open_streams, value: 7}\n',
    );
    const report = await mpctl(['metrics', 'report', '--instance', 'alb-1', '-f', path, ...at()]);
    expect(exitCodeOf(report)).toBe(0);
    expect(report.stdout).toBe('2 data point(s) stored\n');

    const out = await mpctl(['metrics', 'module', 'alb-1', '--since', '10m', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SOURCE +METRIC +LABELS +POINTS +LATEST +MIN +MAX$/);
    expect(lines.find((l) => l.includes('requests_total'))).toMatch(
      /^alb-1 +requests_total +route=web +1 +42 +42 +42$/,
    );
    expect(lines.find((l) => l.includes('open_streams'))).toMatch(/^alb-1 +open_streams +- +1 +7 +7 +7$/);

    const json = await mpctl(['metrics', 'module', 'alb-1', '--name', 'open_streams', '--json', ...at()]);
    expect(JSON.parse(json.stdout)).toMatchObject({
      metrics: {
        instanceId: 'alb-1',
        moduleType: 'MODULE_TYPE_ALB',
        metrics: [{ name: 'open_streams', value: 7 }],
      },
    });
  });

  it('report is a usage error without an instance, and module exits 3 for an unknown one', async () => {
    const path = file('one.json', '[{"name":"x","value":1}]');
    const noInstance = await mpctl(['metrics', 'report', '-f', path, ...at()]);
    expect(exitCodeOf(noInstance)).toBe(2);
    expect(noInstance.stderr).toContain('say which instance the samples belong to: --instance <id>');
    const unknown = await mpctl(['metrics', 'module', 'ghost-1', ...at()]);
    expect(exitCodeOf(unknown)).toBe(3);
  });

  it("nlb shows the NLB's own series and --json returns GetNLBMetrics", async () => {
    const out = await mpctl(['metrics', 'nlb', '--since', '10m', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout.split('\n')[0]).toMatch(/^SOURCE +METRIC +LABELS +POINTS +LATEST +MIN +MAX$/);
    const json = await mpctl(['metrics', 'nlb', '--aggregate', '--json', ...at()]);
    expect(exitCodeOf(json)).toBe(0);
    expect(JSON.parse(json.stdout)).toHaveProperty('collectedAt');
    const bad = await mpctl(['metrics', 'nlb', '--since', 'yesterday', ...at()]);
    expect(exitCodeOf(bad)).toBe(2);
    expect(bad.stderr).toContain('--since: expected a duration such as 500ms, 5s, 2m');
  });

  it('watch prints one compact line per snapshot, or NDJSON with --json, and stops at --count', async () => {
    const out = await mpctl(['metrics', 'watch', '--count', '2', '--interval', '1s', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    // A fresh NLB may not have sampled itself yet: "(no samples)".
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d {2}(\S+=\S+|\(no samples\))/);

    const json = await mpctl(['metrics', 'watch', '--count', '1', '--modules', '--json', ...at()]);
    expect(exitCodeOf(json)).toBe(0);
    const messages = json.stdout.trimEnd().split('\n');
    expect(messages).toHaveLength(1);
    expect(JSON.parse(messages[0])).toHaveProperty('timestamp');
  });
});

describe('mpctl health and status', () => {
  it('health prints the aggregate status and each check; --modules asks the controllers', async () => {
    const out = await mpctl(['health', '--modules', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[0]).toMatch(/^status: +(HEALTHY|DEGRADED|UNHEALTHY)$/);
    expect(lines).toContain('INSTANCE  STATUS');
    expect(lines).toContain('alb-1     HEALTHY');
    const json = await mpctl(['health', '--deep', '--json', ...at()]);
    expect(JSON.parse(json.stdout)).toMatchObject({ checks: { registry: expect.any(String) } });
  });

  it('status summarises the NLB; --modules adds the instance table', async () => {
    const out = await mpctl(['status', '--modules', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[0]).toMatch(/^status: +HEALTHY$/);
    expect(lines.find((l) => l.startsWith('registered modules:'))).toMatch(/ 2$/);
    expect(lines.find((l) => l.startsWith('modules by type:'))).toMatch(/ ALB=2$/);
    expect(lines.find((l) => l.startsWith('INSTANCE'))).toMatch(
      /^INSTANCE +TYPE +VERSION +STATUS +CONTROLLER +TRAFFIC +CONNS +MAX +WEIGHT$/,
    );
    expect(lines.find((l) => l.startsWith('alb-1 '))).toMatch(
      /^alb-1 +ALB +1\.0 +HEALTHY +127\.0\.0\.1:\d+ +127\.0\.0\.1:18080 +0 +0 +100$/,
    );
    const json = await mpctl(['status', '--json', ...at()]);
    expect(JSON.parse(json.stdout)).toMatchObject({
      status: 'HEALTH_STATUS_HEALTHY',
      registeredModules: 2,
      modulesByType: { ALB: 2 },
    });
  });

  it('exits 4 naming the address when the NLB is unreachable', async () => {
    const port = await closedPort();
    for (const argv of [['status'], ['health'], ['load'], ['metrics', 'watch']]) {
      const out = await mpctl([...argv, '--nlb', `127.0.0.1:${port}`]);
      expect(exitCodeOf(out), argv.join(' ')).toBe(4);
      expect(out.stderr).toBe(
        `cannot reach the NLB at 127.0.0.1:${port} (connection refused): is \`mpctl serve nlb\` running? set --nlb or MPCTL_NLB\n`,
      );
    }
  });
});

describe('mpctl config', () => {
  it('get prints one section as YAML, --json decodes every section', async () => {
    const out = await mpctl(['config', 'get', 'heartbeat', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toMatch(/^intervalSeconds: \d+\nmissedHeartbeats: \d+\n/);
    const json = await mpctl(['config', 'get', '--json', ...at()]);
    const { sections } = JSON.parse(json.stdout) as { sections: Array<{ section: string; config: unknown }> };
    expect(sections.map((s) => s.section)).toContain('heartbeat');
    expect(sections.find((s) => s.section === 'heartbeat')?.config).toHaveProperty('intervalSeconds');
  });

  it('set --dry-run validates only; set -f applies', async () => {
    const dry = await mpctl([
      'config',
      'set',
      'heartbeat',
      '--data',
      '{"drainTimeoutSeconds":45}',
      '--dry-run',
      ...at(),
    ]);
    expect(exitCodeOf(dry)).toBe(0);
    expect(dry.stdout).toBe('section heartbeat is valid; nothing applied (validate_only)\n');

    const path = file('heartbeat.yaml', 'drainTimeoutSeconds: 45\n');
    const set = await mpctl(['config', 'set', 'heartbeat', '-f', path, ...at()]);
    expect(exitCodeOf(set)).toBe(0);
    expect(set.stdout).toBe('section heartbeat applied\n');
    const got = await mpctl(['config', 'get', 'heartbeat', ...at()]);
    expect(got.stdout).toContain('drainTimeoutSeconds: 45');
  });

  it('set exits 6 listing the problems of an invalid section, 2 for an unknown section or no body', async () => {
    const bad = await mpctl(['config', 'set', 'heartbeat', '--data', '{"bogus":1}', ...at()]);
    expect(exitCodeOf(bad)).toBe(6);
    expect(bad.stderr).toMatch(/success=false: .*unknown field "bogus".*\(STATUS_CODE_INVALID_ARGUMENT\)/);
    const unknown = await mpctl(['config', 'set', 'nope', '--data', '{}', ...at()]);
    expect(exitCodeOf(unknown)).toBe(2);
    expect(unknown.stderr).toContain('Expected nope to be one of:');
    const none = await mpctl(['config', 'set', 'heartbeat', ...at()]);
    expect(exitCodeOf(none)).toBe(2);
    const notYaml = await mpctl(['config', 'set', 'heartbeat', '--data', '{"a":', ...at()]);
    expect(exitCodeOf(notYaml)).toBe(2);
    expect(notYaml.stderr).toMatch(/^--data is not valid YAML or JSON at line 1, column \d+: /);
  });
});

describe('mpctl rebalance, load, scale', () => {
  it('rebalance prints the message and a before/after table', async () => {
    const out = await mpctl(['rebalance', '--force', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^rebalanced 2 instances with least-conn/);
    expect(lines[2]).toBe('INSTANCE  BEFORE  AFTER');
    expect(lines[3]).toBe('alb-1          0      0');
    const bad = await mpctl(['rebalance', '--strategy', 'random', ...at()]);
    expect(exitCodeOf(bad)).toBe(2);
  });

  it('load prints per-instance load and the balance score', async () => {
    const out = await mpctl(['load', '--type', 'alb', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('INSTANCE  CONNS  CPU%  MEM_MB  RPS  LATENCY_MS  QUEUE  SCORE');
    expect(lines[1]).toBe('alb-1         0     0       0    0           0      0      0');
    expect(lines.at(-1)).toMatch(/^balance score: \d+/);
    const json = await mpctl(['load', '--json', ...at()]);
    expect(Object.keys((JSON.parse(json.stdout) as { distribution: object }).distribution).sort()).toEqual([
      'alb-1',
      'alb-2',
    ]);
  });

  it("scale asks the active version's controller for the target count", async () => {
    const out = await mpctl(['scale', '--type', 'alb', '--to', '3', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout.split('\n')[0]).toMatch(/^result: +/);
    expect(controller.scaled).toContain(3);
    const json = await mpctl(['scale', '--instance', 'alb-1', '--action', 'scale-up', '--json', ...at()]);
    expect(exitCodeOf(json)).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ success: true });
  });

  it('scale: usage errors exit 2, a module type without instances exits 3', async () => {
    const none = await mpctl(['scale', '--action', 'scale-up', ...at()]);
    expect(exitCodeOf(none)).toBe(2);
    expect(none.stderr).toBe(
      'say what to scale: --type alb|dblb|ailb|rtmp or --instance <id>; see `mpctl scale --help`\n',
    );
    const badAction = await mpctl(['scale', '--type', 'alb', '--action', 'sideways', ...at()]);
    expect(exitCodeOf(badAction)).toBe(2);
    const badTo = await mpctl(['scale', '--type', 'alb', '--to', '-1', ...at()]);
    expect(exitCodeOf(badTo)).toBe(2);
    const missing = await mpctl(['scale', '--type', 'dblb', '--action', 'scale-up', ...at()]);
    expect(exitCodeOf(missing)).toBe(3);
    expect(missing.stderr).toMatch(/no DBLB instance is registered/);
  });
});

describe('mpctl deployment update', () => {
  it('status shows the deployment; set-weight changes the weights', async () => {
    const status = await mpctl(['deployment', 'update', '--type', 'alb', '--action', 'status', ...at()]);
    expect(exitCodeOf(status)).toBe(0);
    expect(status.stdout).toContain('phase:          STABLE\n');
    expect(status.stdout).toContain('VERSION  WEIGHT\n1.0         100\n2.0           0\n');

    const dry = await mpctl([
      'deployment',
      'update',
      '--type',
      'alb',
      '--action',
      'set-weight',
      '--version',
      '2.0',
      '--weight',
      '30',
      '--dry-run',
      '--json',
      ...at(),
    ]);
    expect(exitCodeOf(dry)).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({
      deployment: { versionWeights: { '1.0': 70, '2.0': 30 } },
    });
    const unchanged = await nlb.call('updateDeployment', {
      moduleType: 1,
      action: 1,
      version: '',
      weight: 0,
      promotionRate: 0,
      immediate: false,
      validateOnly: false,
      requestedBy: 'test',
      reason: '',
    });
    expect(unchanged.deployment?.versionWeights).toEqual({ '1.0': 100, '2.0': 0 });

    const set = await mpctl([
      'deployment',
      'update',
      '--type',
      'alb',
      '--action',
      'set-weight',
      '--version',
      '2.0',
      '--weight',
      '20',
      ...at(),
    ]);
    expect(exitCodeOf(set)).toBe(0);
    expect(set.stdout).toContain('VERSION  WEIGHT\n1.0          80\n2.0          20\n');
  });

  it('usage errors exit 2; an unknown version exits 3', async () => {
    const noVersion = await mpctl(['deployment', 'update', '--type', 'alb', '--action', 'promote', ...at()]);
    expect(exitCodeOf(noVersion)).toBe(2);
    expect(noVersion.stderr).toBe('--action promote needs --version; see `mpctl deployment update --help`\n');
    const badWeight = await mpctl([
      'deployment',
      'update',
      '--type',
      'alb',
      '--action',
      'set-weight',
      '--version',
      '2.0',
      '--weight',
      '120',
      ...at(),
    ]);
    expect(exitCodeOf(badWeight)).toBe(2);
    expect(badWeight.stderr).toContain('--weight: 0-100, got 120');
    const badAction = await mpctl(['deployment', 'update', '--type', 'alb', '--action', 'explode', ...at()]);
    expect(exitCodeOf(badAction)).toBe(2);
    const unknown = await mpctl([
      'deployment',
      'update',
      '--type',
      'alb',
      '--action',
      'promote',
      '--version',
      '9.9',
      ...at(),
    ]);
    expect(exitCodeOf(unknown)).toBe(3);
    expect(unknown.stderr).toMatch(
      /^marchproxy\.NLBService\/UpdateDeployment answered success=false: .*9\.9/,
    );
  });
});
