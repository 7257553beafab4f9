import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { ModuleTopApp } from '../../cli/ui/ModuleTopApp.js';
import { Top } from '../../cli/ui/Top.js';
import { TopApp } from '../../cli/ui/TopApp.js';
import { initialUiState } from '../../cli/ui/top-keys.js';
import {
  appendHistory,
  deploymentsFromStatus,
  eventsFromStatus,
  headerFromStatus,
  rowsFromSnapshot,
  type History,
  type SortKey,
} from '../../cli/ui/top-model.js';
import type { NlbStreamState } from '../../cli/ui/useNlbStream.js';
import {
  ALB_DEPLOYMENT,
  fakeModuleSource,
  fakeNlbSource,
  moduleSample,
  series,
  snapshot,
  STATUS,
} from './support/top-fakes.js';

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));
const FAST = { backoff: { initialMs: 20, maxMs: 40 }, statusIntervalMs: 50 };

const instances: Array<{ unmount(): void }> = [];
afterEach(() => {
  for (const i of instances.splice(0)) i.unmount();
});
function mount(...args: Parameters<typeof render>) {
  const app = render(...args);
  instances.push(app);
  return app;
}

/** A stream state with three rows and `samples` snapshots of history. */
function state(samples = 12, over: Partial<NlbStreamState> = {}): NlbStreamState {
  let history: History = {};
  let rows = rowsFromSnapshot(snapshot({}));
  for (let i = 1; i <= samples; i++) {
    rows = rowsFromSnapshot(
      snapshot({
        'ALB@1.0': series({ requests_per_second: i * 10, weight: 75 }),
        'ALB@2.0': series({ requests_per_second: 5, weight: 25, instances: 1, healthy_instances: 1 }),
        'DBLB@1.0': series({ requests_per_second: 1, error_rate: 0.1, latency_p99_ms: 250 }),
      }),
    );
    history = appendHistory(history, rows, 120);
  }
  return {
    connection: { phase: 'live', attempt: 0 },
    rows,
    history,
    updatedAt: '2026-01-02T03:04:05.000Z',
    header: headerFromStatus(STATUS),
    deployments: deploymentsFromStatus(STATUS, { ALB: ALB_DEPLOYMENT }),
    events: eventsFromStatus(STATUS),
    ...over,
  };
}

const ui = (over: Partial<ReturnType<typeof initialUiState<SortKey>>> = {}) => ({
  ...initialUiState<SortKey>('name'),
  ...over,
});

describe('<Top>', () => {
  it('shows the header, a row per type and version with sparklines, deployments as bars, events and keys', () => {
    const { lastFrame } = mount(
      <Top target="127.0.0.1:50050" data={state()} ui={ui()} width={100} height={30} />,
    );
    const frame = lastFrame() ?? '';
    expect(frame).toContain('NLB 127.0.0.1:50050  HEALTHY  v0.1.0  up 1h02m');
    expect(frame).toContain('● live  03:04:05');
    expect(frame).toContain('requests 1234  connections 7  instances 3/3 healthy  ALB 2 · DBLB 1');
    expect(frame).toMatch(/MODULE\s+INST\s+WT %\s+CONN\s+REQ\/S\s+ERR %\s+P99 MS\s+CPU %\s+REQ\/S TREND/);
    // The sparkline of 12 samples rising from 10 to 120 req/s, then P99's (flat).
    expect(frame).toMatch(/ALB@1\.0\s+2\/2\s+75\s+10\s+120\s+0\.0\s+20\s+5\s+▁▂▂▃▄▄▅▆▆▇██ █{12}/);
    expect(frame).toMatch(/DBLB@1\.0\s+2\/2\s+100\s+10\s+1\s+10\.0\s+250/);
    expect(frame).toContain('ALB  PROGRESSING  step 2/4 (25 %)');
    expect(frame).toMatch(/1\.0\s+█{23}░{7}\s+75 % {2}stable/);
    expect(frame).toMatch(/2\.0\s+█{8}░{22}\s+25 % {2}target/);
    expect(frame).toContain('DBLB  STABLE');
    expect(frame).toContain('03:01:00 rollout ALB 2.0 step: weight 25');
    expect(frame).toContain('03:00:00 scaling ALB 1.0 scale_up');
    expect(frame).toContain('q quit  s sort: name  / filter  p pause');
  });

  it('drops columns on a narrow terminal and sections on a short one, keeping the rows', () => {
    const narrow =
      mount(<Top target="t" data={state()} ui={ui()} width={40} height={30} />).lastFrame() ?? '';
    expect(narrow).toMatch(/MODULE\s+INST\s+CONN\s+REQ\/S\s+ERR %/);
    expect(narrow).not.toContain('TREND');
    expect(narrow).not.toContain('P99');
    expect(narrow).toContain('ALB@2.0');
    for (const line of narrow.split('\n')) expect([...line].length).toBeLessThanOrEqual(40);

    const short = mount(<Top target="t" data={state()} ui={ui()} width={80} height={12} />).lastFrame() ?? '';
    expect(short).toContain('DBLB@1.0');
    expect(short).toContain('DEPLOYMENTS');
    expect(short).not.toContain('EVENTS');
    expect(short.split('\n').length).toBeLessThanOrEqual(11);
  });

  it('says when it is reconnecting, and why', () => {
    const data = state(3, {
      connection: {
        phase: 'reconnecting',
        attempt: 2,
        error: 'cannot reach the NLB at t (connection refused)',
      },
    });
    const frame = mount(<Top target="t" data={data} ui={ui()} width={100} height={30} />).lastFrame() ?? '';
    expect(frame).toContain('⟳ reconnecting… (attempt 2)');
    expect(frame).toContain('cannot reach the NLB at t (connection refused)');
    expect(frame).toContain('ALB@1.0');
  });

  it('shows the sort, the filter being typed, no match, and the pause', () => {
    const typing = mount(
      <Top
        target="t"
        data={state()}
        ui={ui({ sort: 'p99', filter: 'zz', editingFilter: true })}
        width={100}
        height={30}
      />,
    ).lastFrame();
    expect(typing).toContain('filter: zz█');
    expect(typing).toContain('no module matches "zz"');
    const paused = mount(
      <Top target="t" data={state()} ui={ui({ sort: 'p99', paused: true })} width={100} height={30} />,
    ).lastFrame();
    expect(paused).toContain('‖ paused');
    expect(paused).toContain('s sort: p99');
    expect(paused).toContain('p resume');
  });

  it('tells how to start a module when none is registered', () => {
    const empty = state(0, { rows: [], history: {} });
    const frame = mount(<Top target="t" data={empty} ui={ui()} width={100} height={30} />).lastFrame();
    expect(frame).toContain('no module instance is registered yet');
  });
});

describe('<TopApp> with a fake NLB', () => {
  it('streams rows, and s / filter / p change what is shown; q cancels the stream', async () => {
    const nlb = fakeNlbSource();
    const app = mount(<TopApp source={nlb.source} target="fake:1" options={FAST} />);
    await expect.poll(() => nlb.driver.streams.length).toBe(1);
    expect(app.lastFrame()).toContain('○ connecting…');
    nlb.driver.push(
      snapshot({
        'ALB@1.0': series({ connections: 1, requests_per_second: 5 }),
        'DBLB@1.0': series({ connections: 9, requests_per_second: 1 }),
      }),
    );
    await expect.poll(() => app.lastFrame()).toContain('● live');
    await expect.poll(() => app.lastFrame()).toContain('ALB  PROGRESSING  step 2/4 (25 %)');
    const order = () =>
      (app.lastFrame() ?? '')
        .split('\n')
        .filter((l) => /^(ALB|DBLB)@/.test(l))
        .map((l) => l.split(' ')[0]);
    expect(order()).toEqual(['ALB@1.0', 'DBLB@1.0']);

    app.stdin.write('s'); // rps
    await tick();
    app.stdin.write('s'); // connections
    await expect.poll(() => app.lastFrame()).toContain('sort: connections');
    expect(order()).toEqual(['DBLB@1.0', 'ALB@1.0']);

    app.stdin.write('/');
    await tick();
    app.stdin.write('alb');
    await expect.poll(() => app.lastFrame()).toContain('filter: alb█');
    expect(order()).toEqual(['ALB@1.0']);
    app.stdin.write('\r');
    await expect.poll(() => app.lastFrame()).toContain('/ filter: alb (Esc clears)');

    app.stdin.write('p');
    await expect.poll(() => app.lastFrame()).toContain('‖ paused');
    nlb.driver.push(snapshot({ 'ALB@1.0': series({ connections: 777 }) }, '2026-01-02T03:04:06.000Z'));
    await tick(60);
    expect(app.lastFrame()).not.toContain('777');
    app.stdin.write('p');
    await expect.poll(() => app.lastFrame()).toMatch(/ALB@1\.0\s+2\/2\s+100\s+777/);

    app.stdin.write('q');
    await expect.poll(() => nlb.driver.current.cancelled).toBe(true);
  });

  it('reconnects with backoff when the stream fails, and resumes', async () => {
    const nlb = fakeNlbSource();
    const app = mount(<TopApp source={nlb.source} target="fake:1" options={FAST} />);
    await expect.poll(() => nlb.driver.streams.length).toBe(1);
    nlb.driver.push(snapshot({ 'ALB@1.0': series() }));
    await expect.poll(() => app.lastFrame()).toContain('● live');
    nlb.driver.fail('cannot reach the NLB at fake:1 (connection refused)');
    await expect.poll(() => app.lastFrame()).toContain('reconnecting… (attempt 1)');
    expect(app.lastFrame()).toContain('cannot reach the NLB at fake:1 (connection refused)');
    await expect.poll(() => nlb.driver.streams.length).toBe(2);
    nlb.driver.fail();
    await expect.poll(() => app.lastFrame()).toContain('reconnecting… (attempt 2)');
    await expect.poll(() => nlb.driver.streams.length).toBe(3);
    nlb.driver.push(snapshot({ 'ALB@1.0': series({ connections: 42 }) }));
    await expect.poll(() => app.lastFrame()).toContain('● live');
    expect(app.lastFrame()).toMatch(/ALB@1\.0\s+2\/2\s+100\s+42/);
  });

  it('reconnects a stream that went quiet', async () => {
    const nlb = fakeNlbSource();
    const app = mount(<TopApp source={nlb.source} target="fake:1" options={{ ...FAST, stallMs: 80 }} />);
    await expect.poll(() => nlb.driver.streams.length).toBe(1);
    nlb.driver.push(snapshot({ 'ALB@1.0': series() }));
    await expect.poll(() => nlb.driver.streams.length, { timeout: 2000 }).toBe(2);
    expect(nlb.driver.streams[0].cancelled).toBe(true);
    expect(app.lastFrame()).toMatch(/no data for|● live|connecting/);
  });

  it('keeps the last status while GetNLBStatus fails', async () => {
    let fail = false;
    const nlb = fakeNlbSource(() =>
      fail ? Promise.reject(new Error('unavailable')) : Promise.resolve(STATUS),
    );
    const app = mount(<TopApp source={nlb.source} target="fake:1" options={FAST} />);
    await expect.poll(() => app.lastFrame()).toContain('HEALTHY  v0.1.0');
    fail = true;
    const calls = nlb.statusCalls();
    await expect.poll(() => nlb.statusCalls()).toBeGreaterThan(calls + 1);
    expect(app.lastFrame()).toContain('HEALTHY  v0.1.0');
  });
});

describe('<ModuleTopApp> with a fake controller', () => {
  it('shows the numbers with sparklines and the instances; keys sort and filter them', async () => {
    const controller = fakeModuleSource([
      {
        instanceId: 'alb-1',
        healthStatus: 'HEALTH_STATUS_HEALTHY',
        version: '1.0',
        currentConnections: 2,
        trafficAddress: '127.0.0.1:9001',
      },
      {
        instanceId: 'alb-2',
        healthStatus: 'HEALTH_STATUS_DEGRADED',
        version: '1.0',
        currentConnections: 7,
        trafficAddress: '127.0.0.1:9002',
      },
    ]);
    const app = mount(<ModuleTopApp source={controller.source} target="127.0.0.1:50051" options={FAST} />);
    await expect.poll(() => controller.driver.streams.length).toBe(1);
    controller.driver.push(
      moduleSample({ totalRequests: 0, activeConnections: 9, p99LatencyMs: 12 }, '2026-01-02T03:04:05.000Z'),
    );
    controller.driver.push(
      moduleSample(
        { totalRequests: 200, failedRequests: 4, activeConnections: 9 },
        '2026-01-02T03:04:07.000Z',
      ),
    );
    await expect.poll(() => app.lastFrame()).toContain('ALB 1.0 controller 127.0.0.1:50051');
    const frame = app.lastFrame() ?? '';
    expect(frame).toMatch(/REQ\/S\s+100\s+▁█/);
    expect(frame).toMatch(/ERR %\s+2\s+▁█/);
    expect(frame).toContain('instances 2 (1 healthy)  requests 200  failed 4');
    expect(frame).toMatch(/alb-1\s+HEALTHY\s+1\.0\s+2/);
    const order = () =>
      (app.lastFrame() ?? '')
        .split('\n')
        .filter((l) => l.startsWith('alb-'))
        .map((l) => l.split(' ')[0]);
    expect(order()).toEqual(['alb-1', 'alb-2']);
    app.stdin.write('s');
    await expect.poll(() => app.lastFrame()).toContain('sort: connections');
    expect(order()).toEqual(['alb-2', 'alb-1']);
    app.stdin.write('/');
    await tick();
    app.stdin.write('1');
    await expect.poll(order).toEqual(['alb-1']);
    app.stdin.write('q'); // text while the filter is typed
    await expect.poll(() => app.lastFrame()).toContain('filter: 1q█');
    app.stdin.write('\r');
    await tick();
    app.stdin.write('q');
    await expect.poll(() => controller.driver.current.cancelled).toBe(true);
  });
});
