/**
 * `mpctl module …` against a real NLB and real module controllers in this process: ALB 1.0,
 * ALB 2.0 and DBLB 1.0 (two instances, the one drained and shut down at the end). Each command
 * is checked for its human output and its --json data; then the failure paths: finding the
 * controller (ambiguous, missing, unreachable) and answers the controller refuses.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModuleHandle } from '../../services/modules/runtime/main.js';
import { exitCodeOf, mpctl } from './support/oclif.js';
import { startModuleStack, type ModuleStack } from './support/module-stack.js';
import { closedPort } from './support/test-nlb.js';

let stack: ModuleStack;
let alb1: ModuleHandle;
let alb2: ModuleHandle;
let dblb: ModuleHandle;
let alb1Instance: string;
let dir: string;

const run = (...argv: string[]) => stack.run(argv);
const ALB1 = ['--module', 'alb', '--version', '1.0'];
const instanceIds = (m: ModuleHandle) => [...m.controller.instances.keys()].sort();

/** Writes `text` to a file in the test's temp dir and returns its path. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mpctl-module-cli-'));
  stack = await startModuleStack();
  alb1 = await stack.startModule('alb', '1.0');
  alb2 = await stack.startModule('alb', '2.0');
  dblb = await stack.startModule('dblb', '1.0', 2);
  [alb1Instance] = instanceIds(alb1);
});

afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('finding the controller', () => {
  it('exits 2 listing the versions when --module alb runs several and --version is missing', async () => {
    const out = await run('module', 'status', '--module', 'alb');
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toBe(
      `ALB runs several versions (1.0 at ${alb1.address}; 2.0 at ${alb2.address}); pass --version or --address; see \`mpctl module status --help\`\n`,
    );
  });

  it('uses the only module type that has --version when --module is omitted', async () => {
    const out = await run('module', 'status', '--version', '2.0', '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({ message: 'ALB 2.0: 1/1 instances running' });
  });

  it('exits 2 listing the types when several run --version and --module is omitted', async () => {
    const out = await run('module', 'status', '--version', '1.0');
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toBe(
      'version 1.0 runs in several module types (alb 1.0, 2.0; dblb 1.0); pass --module alb|dblb; see `mpctl module status --help`\n',
    );
  });

  it('exits 3 for a module type with no registered controller', async () => {
    const out = await run('module', 'status', '--module', 'rtmp');
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toBe(
      `no RTMP instance is registered with the NLB at ${stack.nlb}; start one with \`mpctl serve module rtmp --version 1.0\`\n`,
    );
  });

  it('exits 3 for a version nobody runs, naming what is registered', async () => {
    const out = await run('module', 'status', '--version', '9.9');
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toBe(
      `no module of version 9.9 is registered with the NLB at ${stack.nlb}; registered: alb 1.0, 2.0; dblb 1.0\n`,
    );
  });

  it('exits 2 when nothing says which module', async () => {
    const out = await run('module', 'status');
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toMatch(
      /^several module types are registered \(alb 1\.0, 2\.0; dblb 1\.0\); pass --module alb\|dblb/,
    );
  });

  it('rejects an unknown --module value (exit 2)', async () => {
    const out = await run('module', 'status', '--module', 'smtp');
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toContain('--module');
    expect(out.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('exits 4 naming the address when the NLB is unreachable', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const out = await mpctl(['module', 'status', '--module', 'alb', '--nlb', address]);
    expect(exitCodeOf(out)).toBe(4);
    expect(out.stdout).toBe('');
    expect(out.stderr).toBe(
      `cannot reach the NLB at ${address} (connection refused): is \`mpctl serve nlb\` running? set --nlb or MPCTL_NLB\n`,
    );
  });

  it('exits 4 naming the address when --address is unreachable', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const out = await run('module', 'status', '--address', address, '--json');
    expect(exitCodeOf(out)).toBe(4);
    expect(JSON.parse(out.stdout)).toEqual({
      error: {
        message: `cannot reach the module at ${address} (connection refused): is the module listening there? set --address`,
        code: 'UNAVAILABLE',
        exitCode: 4,
      },
    });
  });

  it('talks to --address directly, without the NLB', async () => {
    const nowhere = `127.0.0.1:${await closedPort()}`;
    const out = await mpctl(['module', 'status', '--address', alb2.address, '--nlb', nowhere, '--json']);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({ message: 'ALB 2.0: 1/1 instances running' });
  });

  it("finds an --instance's controller without --module", async () => {
    const out = await run('module', 'status', '--instance', alb1Instance, '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({ instance: { instanceId: alb1Instance, version: '1.0' } });
  });

  it('exits 3 for an instance the NLB does not know', async () => {
    const out = await run('module', 'status', '--module', 'alb', '--instance', 'alb-nope');
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toBe(
      `no ALB instance alb-nope is registered with the NLB at ${stack.nlb}; \`mpctl modules list\` shows the registered ones\n`,
    );
  });
});

describe('mpctl module status', () => {
  it('prints the controller state as key: value lines', async () => {
    const out = await run('module', 'status', ...ALB1);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[0]).toBe('Status:  HEALTHY');
    expect(lines[1]).toBe('Message: ALB 1.0: 1/1 instances running');
    expect(lines[2]).toMatch(/^Updated: \d{4}-\d\d-\d\dT/);
    expect(lines).toContain(`address:           ${alb1.address}`);
    expect(lines).toContain('desired_instances: 1');
    expect(lines).toContain(`nlb:               ${stack.nlb}`);
    expect(out.stderr).toBe('');
  });

  it('returns the GetStatus response with --json', async () => {
    const out = await run('module', 'status', ...ALB1, '--json');
    expect(JSON.parse(out.stdout)).toEqual(out.result);
    expect(out.result).toMatchObject({
      status: 'HEALTH_STATUS_HEALTHY',
      details: { module_type: 'ALB', version: '1.0', address: alb1.address, running_instances: '1' },
    });
  });

  it('shows one instance with --instance', async () => {
    const out = await run('module', 'status', ...ALB1, '--instance', alb1Instance);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toContain(`Instance:    ${alb1Instance}\n`);
    expect(out.stdout).toContain(`Controller:  ${alb1.address}\n`);
    expect(out.stdout).toContain('Connections: 0/unlimited\n');
    expect(out.stdout).toContain('Draining:    no\n');
  });
});

describe('mpctl module instances', () => {
  it('lists the instances as a table', async () => {
    const out = await run('module', 'instances', '--module', 'dblb');
    expect(exitCodeOf(out)).toBe(0);
    const [header, ...rows] = out.stdout.trimEnd().split('\n');
    expect(header).toMatch(
      /^INSTANCE\s+STATUS\s+VERSION\s+CONNECTIONS\s+MAX\s+TRAFFIC\s+DRAINING\s+PID\s+STARTED$/,
    );
    expect(rows.map((r) => r.split(/\s+/).slice(0, 3))).toEqual(
      instanceIds(dblb).map((id) => [id, 'HEALTHY', '1.0']),
    );
  });

  it('returns GetInstances with --json, filtered by --status', async () => {
    const out = await run('module', 'instances', ...ALB1, '--status', 'healthy', '--json');
    expect(out.result).toMatchObject({
      totalInstances: 1,
      instances: [{ instanceId: alb1Instance, healthStatus: 'HEALTH_STATUS_HEALTHY', version: '1.0' }],
    });
    const none = await run('module', 'instances', ...ALB1, '--status', 'stopped', '--json');
    expect(none.result).toEqual({ instances: [], totalInstances: 0 });
  });
});

describe('mpctl module health', () => {
  it('prints the status and each check', async () => {
    const out = await run('module', 'health', ...ALB1);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toMatch(
      /^Status: {2}HEALTHY\nMessage: all checks passed\nChecked: \S+\n\nCHECK +RESULT\n/,
    );
    expect(out.stdout).toMatch(new RegExp(`instance:${alb1Instance} +ok \\(lease registered\\)`));
  });

  it('returns HealthCheck with --json (--deep, one instance)', async () => {
    const out = await run('module', 'health', ...ALB1, '--instance', alb1Instance, '--deep', '--json');
    expect(out.result).toMatchObject({
      status: 'HEALTH_STATUS_HEALTHY',
      checks: { [`instance:${alb1Instance}`]: 'ok (lease registered)' },
    });
  });
});

describe('mpctl module stats', () => {
  it('prints the counters', async () => {
    const out = await run('module', 'stats', ...ALB1);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toMatch(
      /^Instance: {4}all\nRequests: {4}0 \(0 ok, 0 failed\)\nConnections: 0 active, 0 total\nLatency ms: {2}avg 0, p50 0, p95 0, p99 0\n/,
    );
  });

  it('returns GetStats with --json', async () => {
    const out = await run('module', 'stats', ...ALB1, '--instance', alb1Instance, '--reset', '--json');
    expect(out.result).toMatchObject({ stats: { instanceId: alb1Instance } });
  });
});

describe('mpctl module metrics', () => {
  beforeAll(async () => {
    await alb1.sampler.sample();
  });

  it('prints one line per metric', async () => {
    const out = await run('module', 'metrics', ...ALB1, '--since', '10m');
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^METRIC +LATEST +MIN +MAX +SAMPLES +AT$/);
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual(
      expect.arrayContaining(['instances', 'requests_total', 'connections_active', 'latency_p99_ms']),
    );
    expect(lines.find((l) => l.startsWith('instances '))).toMatch(/^instances +1 +1 +1 +\d+ +\S+$/);
  });

  it('returns every sample with --json, only the --name ones', async () => {
    const out = await run('module', 'metrics', ...ALB1, '--name', 'instances', '--json');
    const points = (out.result as { metrics: { metrics: Array<{ name: string; value: number }> } }).metrics
      .metrics;
    expect(points.length).toBeGreaterThan(0);
    expect(new Set(points.map((p) => p.name))).toEqual(new Set(['instances']));
    expect(points.at(-1)?.value).toBe(1);
  });
});

describe('mpctl module top', () => {
  it('prints a header and one line per sample, then stops after --count', async () => {
    const out = await run('module', 'top', ...ALB1, '--interval', '1s', '--count', '2');
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(
      'TIME         REQ/S   REQUESTS   FAILED  ACTIVE   P50 MS   P99 MS   CPU %   MEM MB',
    );
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d +- +0 +0 +0 +0 +0 +[\d.]+ +[\d.]+$/);
    expect(lines[2]).toMatch(/^\d\d:\d\d:\d\d +0 +0 +0 +0 +0 +0 +[\d.]+ +[\d.]+$/);
  });

  it('prints each StreamMetrics message as a JSON line with --json', async () => {
    const out = await run('module', 'top', ...ALB1, '--interval', '1s', '--count', '1', '--json');
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      metrics: {
        moduleType: 'MODULE_TYPE_ALB',
        metrics: expect.arrayContaining([expect.objectContaining({ name: 'totalRequests' })]),
      },
    });
  });

  it('exits 6 with the controller message for an interval it refuses', async () => {
    const out = await run('module', 'top', ...ALB1, '--interval', '2h', '--count', '1');
    expect(exitCodeOf(out)).toBe(6);
    expect(out.stderr).toContain('interval_seconds 7200 is out of range: use 1 to 3600');
  });
});

describe('mpctl module can-handle', () => {
  it('prints the verdict, priority and reason', async () => {
    const out = await run(
      'module',
      'can-handle',
      ...ALB1,
      '--protocol',
      'http',
      '--destination',
      'shop.example.com',
      '--path',
      '/cart',
    );
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toMatch(/^Can handle: yes\nPriority: {3}\d+\nReason: {5}\S.*\nMetadata: {3}/);
  });

  it('returns CanHandle with --json; a route file works too', async () => {
    const route = file('route.yaml', 'protocol: mysql\ndestination_port: 3306\n');
    const out = await run('module', 'can-handle', ...ALB1, '-f', route, '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({ reason: expect.any(String) });
    expect((out.result as { canHandle?: boolean }).canHandle).toBeFalsy();
  });
});

describe('mpctl module scale and reload', () => {
  it('scales to --instances and says what runs', async () => {
    const out = await run('module', 'scale', ...ALB1, '--instances', '2', '--immediate');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toBe('Message: ALB 1.0: desired 2, running 2\nDesired: 2\nRunning: 2\n');
    expect(alb1.controller.desired).toBe(2);
  });

  it('changes the bounds, keeping the other scaling settings (--json)', async () => {
    const out = await run('module', 'scale', ...ALB1, '--min', '1', '--max', '3', '--no-autoscale', '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({ success: true });
    expect(alb1.controller.scaling).toMatchObject({
      minInstances: 1,
      maxInstances: 3,
      autoScalingEnabled: false,
      targetCpuPercent: 70,
      targetConnections: 1000,
    });
  });

  it('exits 6 with the controller message for a count outside the bounds', async () => {
    const out = await run('module', 'scale', ...ALB1, '--instances', '5');
    expect(exitCodeOf(out)).toBe(6);
    expect(out.stderr).toContain('desired_instances 5 is outside the bounds 1-3');
  });

  it('exits 2 when there is nothing to change', async () => {
    const out = await run('module', 'scale', ...ALB1);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toBe(
      'nothing to change: pass --instances, --min, --max or --autoscale; see `mpctl module scale --help`\n',
    );
  });

  it('reloads and pushes the configuration', async () => {
    const out = await run('module', 'reload', ...ALB1, '--graceful');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toMatch(
      /^configuration reloaded from \S+ and pushed to 2 instance\(s\); open connections kept\n$/,
    );
    const json = await run('module', 'reload', ...ALB1, '--json');
    expect(json.result).toMatchObject({ success: true });
  });
});

describe('mpctl module routes', () => {
  it('applies routes from YAML and lists them', async () => {
    const routes = file(
      'routes.yaml',
      [
        'routes:',
        '  - route_id: web',
        '    protocol: http',
        '    destination_pattern: shop.example.com',
        '    path_pattern: /*',
        '    priority: 10',
        '  - routeId: api',
        '    protocol: PROTOCOL_HTTP',
        '    destinationPattern: api.example.com',
        '    headers: {x-env: prod}',
        '',
      ].join('\n'),
    );
    const applied = await run('module', 'routes', 'apply', ...ALB1, '-f', routes);
    expect(exitCodeOf(applied)).toBe(0);
    expect(applied.stdout).toBe('2 route(s) saved and sent to the NLB\n');

    const out = await run('module', 'routes', 'list', ...ALB1);
    expect(out.stdout).toBe(
      [
        'ID   PROTOCOL  SOURCE  DESTINATION       PORT  PATH  HEADERS     PRIORITY',
        'api  HTTP      -       api.example.com   -     -     x-env=prod         0',
        'web  HTTP      -       shop.example.com  -     /*    -                 10',
        '',
      ].join('\n'),
    );
  });

  it('returns the routes with --json', async () => {
    const out = await run('module', 'routes', 'list', ...ALB1, '--json');
    expect(out.result).toEqual({
      totalRoutes: 2,
      routes: [
        {
          routeId: 'api',
          protocol: 'PROTOCOL_HTTP',
          destinationPattern: 'api.example.com',
          headers: { 'x-env': 'prod' },
        },
        {
          routeId: 'web',
          protocol: 'PROTOCOL_HTTP',
          destinationPattern: 'shop.example.com',
          pathPattern: '/*',
          priority: 10,
        },
      ],
    });
  });

  it('applies a JSON list with --json', async () => {
    const routes = file(
      'routes.json',
      JSON.stringify([{ route_id: 'img', protocol: 'https', destination_pattern: 'img.example.com' }]),
    );
    const out = await run('module', 'routes', 'apply', ...ALB1, '-f', routes, '--json');
    expect(out.result).toMatchObject({ success: true, routesUpdated: 1 });
  });

  it('rejects a file that is not YAML (exit 2, naming the line)', async () => {
    const bad = file('bad.yaml', 'routes:\n  - route_id: [web\n');
    const out = await run('module', 'routes', 'apply', ...ALB1, '-f', bad);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toMatch(new RegExp(`^--file ${bad} is not valid YAML or JSON at line \\d+`));
  });

  it('exits 6 with the controller message for an invalid route', async () => {
    const routes = file('invalid.yaml', '- route_id: ""\n  protocol: http\n');
    const out = await run('module', 'routes', 'apply', ...ALB1, '-f', routes);
    expect(exitCodeOf(out)).toBe(6);
    expect(out.stderr).toMatch(/^marchproxy\.ModuleService\/UpdateRoutes answered success=false: .*route_id/);
  });

  it('deletes a route; an unknown one exits 3', async () => {
    const out = await run('module', 'routes', 'delete', 'api', ...ALB1);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toBe('route api deleted here and from the NLB\n');
    const json = await run('module', 'routes', 'delete', 'img', ...ALB1, '--json');
    expect(json.result).toMatchObject({ success: true });
    const missing = await run('module', 'routes', 'delete', 'api', ...ALB1);
    expect(exitCodeOf(missing)).toBe(3);
    expect(missing.stderr).toBe(
      'marchproxy.ModuleService/DeleteRoute answered success=false: route api does not exist (routes: web) (STATUS_CODE_NOT_FOUND)\n',
    );
  });
});

describe('mpctl module ratelimits', () => {
  it('sets, lists and removes a limit', async () => {
    const set = await run(
      'module',
      'ratelimits',
      'set',
      'per-client',
      ...ALB1,
      '--target',
      '10.0.0.7',
      '--rps',
      '100',
      '--burst',
      '20',
    );
    expect(exitCodeOf(set)).toBe(0);
    expect(set.stdout).toBe('rate limit per-client set for 10.0.0.7\n');

    const list = await run('module', 'ratelimits', 'list', ...ALB1);
    expect(list.stdout).toBe(
      [
        'ID          TARGET    PER SECOND  PER MINUTE  PER HOUR  BURST  ENABLED',
        'per-client  10.0.0.7         100           -         -     20  yes',
        '',
      ].join('\n'),
    );

    const removed = await run('module', 'ratelimits', 'remove', 'per-client', ...ALB1);
    expect(removed.stdout).toBe('rate limit per-client removed\n');
    expect((await run('module', 'ratelimits', 'list', ...ALB1, '--json')).result).toEqual({
      limits: [],
      totalLimits: 0,
    });
  });

  it('takes a limit from a file and returns the responses with --json', async () => {
    const limit = file('limit.yaml', 'limit_id: global\nrequests_per_minute: 600\n');
    const set = await run('module', 'ratelimits', 'set', ...ALB1, '-f', limit, '--disable', '--json');
    expect(set.result).toMatchObject({ success: true, message: 'rate limit global set for *' });
    const list = await run('module', 'ratelimits', 'list', ...ALB1, '--json');
    expect(list.result).toEqual({
      totalLimits: 1,
      limits: [{ limitId: 'global', target: '*', requestsPerMinute: 600 }],
    });
    const removed = await run('module', 'ratelimits', 'remove', 'global', ...ALB1, '--json');
    expect(removed.result).toMatchObject({ success: true });
  });

  it('exits 2 without a limit id, and 3 removing an unknown one', async () => {
    const noId = await run('module', 'ratelimits', 'set', ...ALB1, '--rps', '5');
    expect(exitCodeOf(noId)).toBe(2);
    expect(noId.stderr).toBe(
      'missing the limit id: pass it as the argument or as limit_id in --file; see `mpctl module ratelimits set --help`\n',
    );
    const unknown = await run('module', 'ratelimits', 'remove', 'nope', ...ALB1);
    expect(exitCodeOf(unknown)).toBe(3);
  });
});

describe('mpctl module config', () => {
  it('prints each section as YAML under a comment line', async () => {
    const out = await run('module', 'config', 'get', ...ALB1);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toMatch(
      /^# module \(alb-1\.0-module, sha256 [0-9a-f]{12}, updated \S+\)\nbackends: \[\]\n/,
    );
    expect(out.stdout).toMatch(/\n# scaling \(alb-1\.0-scaling, .*\)\nminInstances: 1\nmaxInstances: 3\n/);
    expect(out.stdout).toMatch(/\n# limits \(alb-1\.0-limits, .*\)\nmaxConnectionsPerInstance: 0\n$/);
  });

  it('returns the sections with their data decoded under --json', async () => {
    const out = await run('module', 'config', 'get', ...ALB1, '--type', 'limits', '--json');
    expect(out.result).toEqual({
      configs: [
        {
          configId: 'alb-1.0-limits',
          configType: 'limits',
          checksum: expect.stringMatching(/^[0-9a-f]{64}$/),
          updatedAt: expect.any(String),
          data: { maxConnectionsPerInstance: 0 },
        },
      ],
      lastUpdated: expect.any(String),
    });
  });

  it('validates only with --dry-run', async () => {
    const limits = file('limits.json', '{"maxConnectionsPerInstance": 50}');
    const out = await run('module', 'config', 'set', ...ALB1, '--type', 'limits', '-f', limits, '--dry-run');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toBe('limits are valid; nothing applied (validate_only)\n');
    expect(alb1.controller.snapshot().maxConnections).toBe(0);
  });

  it('applies a section (--json)', async () => {
    const limits = file('limits.yaml', 'maxConnectionsPerInstance: 50\n');
    const out = await run('module', 'config', 'set', ...ALB1, '--type', 'limits', '-f', limits, '--json');
    expect(out.result).toMatchObject({ success: true, validationPassed: true, message: 'limits applied' });
    expect(alb1.controller.snapshot().maxConnections).toBe(50);
  });

  it('exits 6 listing every problem of a rejected config', async () => {
    const bad = file('bad-config.yaml', 'bogus: 1\n');
    const out = await run('module', 'config', 'set', ...ALB1, '-f', bad);
    expect(exitCodeOf(out)).toBe(6);
    expect(out.stderr).toBe(`${bad} was rejected, nothing applied: config: unknown field(s) bogus\n`);
  });
});

describe('mpctl module drain and shutdown', () => {
  it('drains one instance', async () => {
    const [first] = instanceIds(dblb);
    const out = await run('module', 'drain', '--module', 'dblb', '--instance', first, '--grace-period', '1s');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toBe('1 instance(s) drained\n');
    expect(dblb.controller.instances.get(first)?.draining).toBe(true);
  });

  it('returns Drain with --json; an unknown instance exits 3', async () => {
    const [, second] = instanceIds(dblb);
    const out = await run('module', 'drain', '--address', dblb.address, '--instance', second, '--json');
    expect(out.result).toMatchObject({ success: true, instancesDrained: 1 });
    const unknown = await run('module', 'drain', '--address', dblb.address, '--instance', 'dblb-nope');
    expect(exitCodeOf(unknown)).toBe(3);
    expect(unknown.stderr).toContain('instance dblb-nope is not managed by this DBLB 1.0 controller');
  });

  it('stops one instance; --no-graceful on a draining one exits 6 with the controller message', async () => {
    const [first] = instanceIds(dblb);
    const refused = await run(
      'module',
      'shutdown',
      '--address',
      dblb.address,
      '--instance',
      first,
      '--no-graceful',
    );
    expect(exitCodeOf(refused)).toBe(6);
    expect(refused.stderr).toBe(
      `marchproxy.ModuleService/Shutdown answered success=false: instance ${first} is already stopping (STATUS_CODE_INVALID_ARGUMENT)\n`,
    );
    const out = await run(
      'module',
      'shutdown',
      '--address',
      dblb.address,
      '--instance',
      first,
      '--grace-period',
      '1s',
    );
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout).toBe(`instance ${first} stopped; desired count is now 1\n`);
  });

  it('stops the whole controller (--json)', async () => {
    const out = await run('module', 'shutdown', '--address', dblb.address, '--grace-period', '1s', '--json');
    expect(exitCodeOf(out)).toBe(0);
    expect(out.result).toMatchObject({
      success: true,
      message: expect.stringMatching(/^DBLB 1\.0 controller shutting down 1 instance\(s\) gracefully$/),
    });
    await expect(
      Promise.race([
        dblb.done.then(() => 'done'),
        new Promise((r) => setTimeout(() => r('timeout'), 10_000)),
      ]),
    ).resolves.toBe('done');
  });
});
