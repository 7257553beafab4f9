/**
 * `mpctl modules …` and `mpctl routes …` against a real NLB started in-process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModuleType, Protocol } from '../../proto/gen/marchproxy/types.js';
import { exitCodeOf, mpctl } from './support/oclif.js';
import { startRealNlb, type RealNlb } from './support/real-nlb.js';
import { closedPort } from './support/test-nlb.js';

let nlb: RealNlb;
let dir: string;
const at = () => ['--nlb', nlb.address];

beforeAll(async () => {
  nlb = await startRealNlb();
  dir = mkdtempSync(join(tmpdir(), 'mpctl-nlb-cli-'));
  await nlb.register('alb-1', '127.0.0.1:50051', { maxConnections: 100, trafficAddress: '127.0.0.1:8080' });
  await nlb.register('alb-2', '127.0.0.1:50061', { version: '2.0', trafficAddress: '127.0.0.1:8081' });
  await nlb.register('db-1', '127.0.0.1:50052', {
    moduleType: ModuleType.MODULE_TYPE_DBLB,
    trafficAddress: '127.0.0.1:5433',
    protocols: [Protocol.PROTOCOL_POSTGRES],
  });
});

afterAll(async () => {
  await nlb.close();
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('mpctl modules list', () => {
  it('prints an aligned table of the registered instances', async () => {
    const out = await mpctl(['modules', 'list', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'INSTANCE  TYPE  VERSION  STATUS   CONTROLLER       TRAFFIC         CONNS  MAX  WEIGHT',
    );
    expect(lines[1]).toBe(
      'alb-1     ALB   1.0      HEALTHY  127.0.0.1:50051  127.0.0.1:8080      0  100     100',
    );
    expect(lines).toHaveLength(4);
    expect(out.stderr).toBe('');
  });

  it('filters by --type and --status and returns protobuf JSON with --json', async () => {
    const out = await mpctl(['modules', 'list', '--type', 'dblb', '--status', 'healthy', '--json', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const json = JSON.parse(out.stdout) as { modules: Array<Record<string, unknown>>; totalModules: number };
    expect(json.totalModules).toBe(1);
    expect(json.modules[0]).toMatchObject({
      instanceId: 'db-1',
      moduleType: 'MODULE_TYPE_DBLB',
      healthStatus: 'HEALTH_STATUS_HEALTHY',
      address: '127.0.0.1:50052',
    });
  });

  it('sorts, filters with --filter and pages', async () => {
    const sorted = await mpctl(['modules', 'list', '--sort', 'instance_id', '--desc', '--json', ...at()]);
    const ids = (JSON.parse(sorted.stdout) as { modules: Array<{ instanceId: string }> }).modules.map(
      (m) => m.instanceId,
    );
    expect(ids).toEqual(['db-1', 'alb-2', 'alb-1']);

    const filtered = await mpctl(['modules', 'list', '--filter', 'version=2.0', ...at()]);
    expect(
      filtered.stdout
        .trimEnd()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual(['alb-2']);

    const paged = await mpctl(['modules', 'list', '--page-size', '2', '--page', '1', ...at()]);
    expect(paged.stdout.trimEnd().split('\n').at(-1)).toBe('page 1 of 2 (3 instances); --page 2 for more');
  });

  it('rejects a bad --filter, --sort or --status as usage errors (exit 2)', async () => {
    const badFilter = await mpctl(['modules', 'list', '--filter', 'colour=red', ...at()]);
    expect(exitCodeOf(badFilter)).toBe(2);
    expect(badFilter.stderr).toMatch(/^--filter: unknown field "colour"; use one of instance_id, /);
    const badSort = await mpctl(['modules', 'list', '--sort', 'nope', ...at()]);
    expect(exitCodeOf(badSort)).toBe(2);
    expect(badSort.stderr).toContain('Expected --sort=nope to be one of');
    const badStatus = await mpctl(['modules', 'list', '--status', 'fine', ...at()]);
    expect(exitCodeOf(badStatus)).toBe(2);
    const badPage = await mpctl(['modules', 'list', '--page', '0', ...at()]);
    expect(exitCodeOf(badPage)).toBe(2);
    expect(badPage.stderr).toContain('--page: expected a whole number of at least 1, got "0"');
  });

  it('--watch prints the table and stops on Ctrl-C', async () => {
    const listeners = process.listenerCount('SIGINT');
    const running = mpctl(['modules', 'list', '--watch', '--interval', '50ms', '--type', 'alb', ...at()]);
    // Wait (bounded) until the command listens for Ctrl-C and has refreshed a few times.
    for (let i = 0; i < 100 && process.listenerCount('SIGINT') === listeners; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 200));
    process.emit('SIGINT');
    const out = await running;
    expect(exitCodeOf(out)).toBe(0);
    // Unchanged between refreshes: printed once.
    expect(out.stdout.match(/^INSTANCE/gm)).toHaveLength(1);
    expect(out.stdout).toContain('alb-2');
  });

  it('exits 4 with one line naming the address when the NLB is unreachable', async () => {
    const port = await closedPort();
    const out = await mpctl(['modules', 'list', '--nlb', `127.0.0.1:${port}`]);
    expect(exitCodeOf(out)).toBe(4);
    expect(out.stderr).toBe(
      `cannot reach the NLB at 127.0.0.1:${port} (connection refused): is \`mpctl serve nlb\` running? set --nlb or MPCTL_NLB\n`,
    );
    expect(out.stdout).toBe('');
  });
});

describe('mpctl modules get', () => {
  it('prints key: value lines for one instance', async () => {
    const out = await mpctl(['modules', 'get', 'alb-1', ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[0]).toBe('instance:        alb-1');
    expect(lines).toContain('controller:      127.0.0.1:50051');
    expect(lines).toContain('connections:     0 of 100');
    expect(lines).toContain('routes: none');
  });

  it('returns GetModuleInfo JSON with --json', async () => {
    const out = await mpctl(['modules', 'get', 'db-1', '--json', ...at()]);
    const json = JSON.parse(out.stdout) as { instance: { instanceId: string; protocols: string[] } };
    expect(json.instance.instanceId).toBe('db-1');
    expect(json.instance.protocols).toEqual(['PROTOCOL_POSTGRES']);
  });

  it('exits 3 for an unknown instance', async () => {
    const out = await mpctl(['modules', 'get', 'nope-1', ...at()]);
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toMatch(/^NOT_FOUND from 127\.0\.0\.1:\d+: .*nope-1.*\n$/);
  });
});

describe('mpctl modules register | heartbeat | unregister', () => {
  it('registers from flags, heartbeats, and unregisters', async () => {
    const reg = await mpctl([
      'modules',
      'register',
      '--type',
      'rtmp',
      '--instance',
      'rtmp-1',
      '--version',
      '1.0',
      '--address',
      '127.0.0.1:50054',
      '--traffic-address',
      '127.0.0.1:1935',
      '--metadata',
      'zone=a',
      '--json',
      ...at(),
    ]);
    expect(exitCodeOf(reg)).toBe(0);
    const { registrationId, success } = JSON.parse(reg.stdout) as {
      registrationId: string;
      success: boolean;
    };
    expect(success).toBe(true);
    expect(registrationId).toMatch(/\S/);
    const info = await nlb.call('getModuleInfo', { instanceId: 'rtmp-1' });
    expect(info.instance?.metadata.zone).toBe('a');

    const hb = await mpctl(['modules', 'heartbeat', 'rtmp-1', '--registration-id', registrationId, ...at()]);
    expect(exitCodeOf(hb)).toBe(0);
    expect(hb.stdout.split('\n')[0]).toBe('acknowledged:  yes');

    const un = await mpctl(['modules', 'unregister', 'rtmp-1', ...at()]);
    expect(exitCodeOf(un)).toBe(0);
    expect(un.stdout).toBe('rtmp-1 unregistered\n');
    const after = await nlb.call('listModules', {
      moduleTypeFilter: ModuleType.MODULE_TYPE_RTMP,
      statusFilter: 0,
    });
    expect(after.modules).toEqual([]);
  });

  it('registers from a YAML file with short enum names', async () => {
    const path = file(
      'instance.yaml',
      'instance:\n  instance_id: ai-1\n  module_type: ailb\n  version: "1.0"\n  address: 127.0.0.1:50053\n  traffic_address: 127.0.0.1:8090\ncapabilities:\n  models: gpt-4\n',
    );
    const out = await mpctl(['modules', 'register', '-f', path, ...at()]);
    expect(exitCodeOf(out)).toBe(0);
    expect(out.stdout.split('\n')[0]).toBe('registered:      registered ai-1 (AILB 1.0)');
    await mpctl(['modules', 'unregister', 'ai-1', ...at()]);
  });

  it('is a usage error (exit 2) without the required fields', async () => {
    const out = await mpctl(['modules', 'register', '--type', 'alb', ...at()]);
    expect(exitCodeOf(out)).toBe(2);
    expect(out.stderr).toBe(
      'missing --instance, --version, --address (or give them in -f); see `mpctl modules register --help`\n',
    );
  });

  it('exits 3 when the heartbeat is not acknowledged', async () => {
    const out = await mpctl(['modules', 'heartbeat', 'ghost-1', ...at()]);
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toMatch(/^the NLB did not acknowledge the heartbeat of ghost-1: /);
  });

  it('exits 3 when unregistering an unknown instance', async () => {
    const out = await mpctl(['modules', 'unregister', 'ghost-1', ...at()]);
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toMatch(
      /^marchproxy\.NLBService\/UnregisterModule answered success=false: .*\(STATUS_CODE_NOT_FOUND\)\n$/,
    );
  });
});

describe('mpctl routes', () => {
  it('apply --dry-run validates only; apply from a file applies; list shows the route', async () => {
    const path = file(
      'routes.yaml',
      '- route_id: web\n  protocol: http\n  destination_pattern: example.com\n  path_pattern: /api/*\n  priority: 10\n  metadata: {module_type: ALB}\n',
    );
    const dry = await mpctl(['routes', 'apply', '-f', path, '--dry-run', ...at()]);
    expect(exitCodeOf(dry)).toBe(0);
    expect(dry.stdout).toBe(
      'result:         1 route(s) valid; nothing applied (validate_only)\nroutes updated: 0\n',
    );
    expect((await nlb.call('getRoutingTable', { protocolFilter: 0, destinationFilter: '' })).entries).toEqual(
      [],
    );

    const applied = await mpctl(['routes', 'apply', '-f', path, ...at()]);
    expect(exitCodeOf(applied)).toBe(0);
    expect(applied.stdout).toBe('result:         1 route(s) applied\nroutes updated: 1\n');

    const list = await mpctl(['routes', 'list', ...at()]);
    expect(list.stdout).toBe(
      [
        'ROUTE  PROTOCOL  HOST         PORT  PATH    PRIORITY  MODULE  OWNER     CONNS',
        'web    HTTP      example.com     *  /api/*        10  ALB     operator      0',
        '',
      ].join('\n'),
    );
    const json = await mpctl(['routes', 'list', '--json', ...at()]);
    expect(JSON.parse(json.stdout)).toMatchObject({
      entries: [
        { route: { routeId: 'web', protocol: 'PROTOCOL_HTTP' }, targetModuleType: 'MODULE_TYPE_ALB' },
      ],
      totalEntries: 1,
    });
  });

  it('apply from flags, and exits 6 listing the problems of an invalid route', async () => {
    const ok = await mpctl([
      'routes',
      'apply',
      '--id',
      'db',
      '--protocol',
      'postgres',
      '--port',
      '5432',
      '--module',
      'dblb',
      '--json',
      ...at(),
    ]);
    expect(exitCodeOf(ok)).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ success: true, routesUpdated: 1 });

    const bad = await mpctl(['routes', 'apply', '--host', 'x.example.com', '--path', 'no-slash', ...at()]);
    expect(exitCodeOf(bad)).toBe(6);
    expect(bad.stderr).toMatch(
      /^marchproxy\.NLBService\/UpdateRouting answered success=false: .*\(STATUS_CODE_INVALID_ARGUMENT\)\n$/,
    );
  });

  it('apply is a usage error without a route, and for a bad port', async () => {
    const none = await mpctl(['routes', 'apply', ...at()]);
    expect(exitCodeOf(none)).toBe(2);
    expect(none.stderr).toContain(
      'describe the route: -f file, or at least one of --protocol, --host, --port, --path',
    );
    const port = await mpctl(['routes', 'apply', '--port', '70000', ...at()]);
    expect(exitCodeOf(port)).toBe(2);
    expect(port.stderr).toContain('--port: port must be 1-65535, got 70000');
    const yaml = await mpctl(['routes', 'apply', '-f', file('bad.yaml', 'routes: [\n'), ...at()]);
    expect(exitCodeOf(yaml)).toBe(2);
    expect(yaml.stderr).toMatch(/^--file .*bad\.yaml is not valid YAML or JSON at line \d+, column \d+: /);
  });

  it('resolve picks an instance for a described request', async () => {
    const out = await mpctl([
      'routes',
      'resolve',
      '--protocol',
      'http',
      '--host',
      'example.com',
      '--path',
      '/api/users',
      '--dry-run',
      ...at(),
    ]);
    expect(exitCodeOf(out)).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[0]).toBe('instance: alb-1');
    expect(lines[1]).toBe('module:   ALB');
    expect(lines[2]).toBe('address:  127.0.0.1:8080');

    const json = await mpctl([
      'routes',
      'resolve',
      '--protocol',
      'http',
      '--host',
      'example.com',
      '--path',
      '/api/x',
      '--json',
      ...at(),
    ]);
    expect(JSON.parse(json.stdout)).toMatchObject({ routed: true, targetModuleType: 'MODULE_TYPE_ALB' });
  });

  it('resolve exits 3 when no route matches', async () => {
    const out = await mpctl([
      'routes',
      'resolve',
      '--protocol',
      'mongodb',
      '--host',
      'nowhere.test',
      ...at(),
    ]);
    expect(exitCodeOf(out)).toBe(3);
    expect(out.stderr).toMatch(/^not routed: /);
  });

  it('validate says valid with its handlers, and exits 6 for an invalid route', async () => {
    const ok = await mpctl([
      'routes',
      'validate',
      '--protocol',
      'http',
      '--host',
      'a.example.com',
      '--module',
      'alb',
      ...at(),
    ]);
    expect(exitCodeOf(ok)).toBe(0);
    expect(ok.stdout.split('\n').slice(0, 3)).toEqual([
      'valid:             yes',
      'has handler:       yes',
      'capable instances: alb-1, alb-2',
    ]);
    const bad = await mpctl(['routes', 'validate', '--host', 'a.example.com', ...at()]);
    expect(exitCodeOf(bad)).toBe(6);
    expect(bad.stderr).toMatch(/^the route is invalid: .*module type/);
    const json = await mpctl(['routes', 'validate', '--host', 'a.example.com', '--json', ...at()]);
    expect(exitCodeOf(json)).toBe(6);
    expect(JSON.parse(json.stdout)).toMatchObject({
      error: { code: 'INVALID_ROUTE', exitCode: 6, response: { validationErrors: [expect.any(String)] } },
    });
  });
});
