import { describe, expect, it } from 'vitest';
import { moduleNumbers, visibleInstances } from '../../cli/ui/module-model.js';
import { bar, fit, fitColumns, sparkline, splitHeight } from '../../cli/ui/text-layout.js';
import { initialUiState, reduceKey } from '../../cli/ui/top-keys.js';
import {
  appendHistory,
  deploymentsFromStatus,
  eventsFromStatus,
  formatUptime,
  headerFromStatus,
  nextSort,
  rowLine,
  rowsFromSnapshot,
  SORTS,
  visibleRows,
} from '../../cli/ui/top-model.js';
import { ALB_DEPLOYMENT, moduleSample, series, snapshot, STATUS } from './support/top-fakes.js';

describe('top model', () => {
  const rows = rowsFromSnapshot(
    snapshot({
      'ALB@1.0': series({ requests_per_second: 10, connections: 30, error_rate: 0.02 }),
      'ALB@2.0': series({ requests_per_second: 40, connections: 5, instances: 1, healthy_instances: 0 }),
      'DBLB@1.0': series({ requests_per_second: 20, connections: 10, latency_p99_ms: 90 }),
    }),
  );

  it('reads one row per type and version from a snapshot', () => {
    expect(rows.map((r) => r.key)).toEqual(['ALB@1.0', 'ALB@2.0', 'DBLB@1.0']);
    expect(rows[1]).toEqual({
      key: 'ALB@2.0',
      type: 'ALB',
      version: '2.0',
      instances: 1,
      healthy: 0,
      weight: 100,
      connections: 5,
      rps: 40,
      errorRate: 0,
      p99Ms: 20,
      cpuPercent: 5,
    });
  });

  it('treats a series the NLB left out (zero, omitted in protobuf JSON) as 0', () => {
    const [row] = rowsFromSnapshot({
      moduleMetrics: { 'RTMP@1.0': { metrics: [{ name: 'instances', value: 1 }] } },
    });
    expect(row).toMatchObject({ type: 'RTMP', version: '1.0', instances: 1, healthy: 0, rps: 0 });
  });

  it('sorts by each key and filters by key, any case', () => {
    expect(visibleRows(rows, 'name', '').map((r) => r.key)).toEqual(['ALB@1.0', 'ALB@2.0', 'DBLB@1.0']);
    expect(visibleRows(rows, 'rps', '').map((r) => r.key)).toEqual(['ALB@2.0', 'DBLB@1.0', 'ALB@1.0']);
    expect(visibleRows(rows, 'connections', '').map((r) => r.key)).toEqual([
      'ALB@1.0',
      'DBLB@1.0',
      'ALB@2.0',
    ]);
    expect(visibleRows(rows, 'errors', '')[0].key).toBe('ALB@1.0');
    expect(visibleRows(rows, 'p99', '')[0].key).toBe('DBLB@1.0');
    expect(visibleRows(rows, 'name', 'dblb').map((r) => r.key)).toEqual(['DBLB@1.0']);
    expect(visibleRows(rows, 'name', '@2').map((r) => r.key)).toEqual(['ALB@2.0']);
    expect(SORTS.map(nextSort)).toEqual(['rps', 'connections', 'errors', 'p99', 'name']);
  });

  it('keeps a bounded history per row and drops rows that are gone', () => {
    let history = appendHistory({}, rows, 3);
    for (const rps of [11, 12, 13]) {
      history = appendHistory(history, [{ ...rows[0], rps }], 3);
    }
    expect(history['ALB@1.0'].rps).toEqual([11, 12, 13]);
    expect(history['ALB@2.0']).toBeUndefined();
  });

  it('reads the header, deployments (with the step when the state is known) and events from the status', () => {
    expect(headerFromStatus(STATUS)).toEqual({
      status: 'HEALTHY',
      version: '0.1.0',
      uptimeSeconds: 3725,
      totalRequests: 1234,
      activeConnections: 7,
      registeredModules: 3,
      healthyInstances: 3,
      modulesByType: { ALB: 2, DBLB: 1 },
    });
    expect(deploymentsFromStatus(STATUS, { ALB: ALB_DEPLOYMENT })).toEqual([
      {
        type: 'ALB',
        phase: 'PROGRESSING',
        step: '2/4 (25 %)',
        versions: [
          { version: '1.0', weight: 75, role: 'stable' },
          { version: '2.0', weight: 25, role: 'target' },
        ],
      },
      { type: 'DBLB', phase: 'STABLE', versions: [{ version: '1.0', weight: 100 }] },
    ]);
    expect(eventsFromStatus(STATUS)).toEqual([
      { kind: 'rollout', at: '2026-01-02T03:01:00.000Z', text: 'ALB 2.0 step: weight 25' },
      {
        kind: 'scaling',
        at: '2026-01-02T03:00:00.000Z',
        text: 'ALB 1.0 scale_up: connections 90 % of target',
      },
    ]);
    expect(formatUptime(3725)).toBe('1h02m');
    expect(formatUptime(65)).toBe('1m05s');
    expect(formatUptime(90061)).toBe('1d1h');
  });

  it('prints a row as one line in line mode', () => {
    expect(rowLine('2026-01-02T03:04:05.000Z', rows[0])).toBe(
      '03:04:05 ALB@1.0          2/2  100      30       10    2.0      20     5',
    );
  });
});

describe('text layout', () => {
  it('drops low-priority columns first and gives the flexible one what is left', () => {
    const columns = [
      { id: 'a', header: 'A', width: 10, priority: 0 },
      { id: 'b', header: 'B', width: 10, priority: 2 },
      { id: 'c', header: 'C', width: 10, priority: 1 },
      { id: 'spark', header: 'S', width: 5, priority: 3, flex: true, maxWidth: 20 },
    ];
    expect(fitColumns(columns, 80).map((c) => [c.id, c.width])).toEqual([
      ['a', 10],
      ['b', 10],
      ['c', 10],
      ['spark', 20],
    ]);
    expect(fitColumns(columns, 40).map((c) => [c.id, c.width])).toEqual([
      ['a', 10],
      ['b', 10],
      ['c', 10],
      ['spark', 7],
    ]);
    expect(fitColumns(columns, 25).map((c) => c.id)).toEqual(['a', 'c']);
    expect(fitColumns(columns, 5).map((c) => c.id)).toEqual(['a']);
  });

  it('pads and cuts cells', () => {
    expect(fit('abc', 5)).toBe('abc  ');
    expect(fit('abc', 5, 'right')).toBe('  abc');
    expect(fit('abcdef', 4)).toBe('abc…');
  });

  it('splits the height in priority order, keeping later floors when it can', () => {
    expect(splitHeight(20, [3, 5, 4], [1, 3, 3])).toEqual([3, 5, 4]);
    expect(splitHeight(10, [8, 5, 4], [1, 3, 3])).toEqual([4, 3, 3]);
    expect(splitHeight(5, [8, 5, 4], [1, 3, 3])).toEqual([2, 3, 0]);
    expect(splitHeight(2, [8, 5, 4], [1, 3, 3])).toEqual([2, 0, 0]);
  });

  it('draws sparklines from 0, right-aligned, averaging runs when the history is longer than the width', () => {
    expect(sparkline([], 4)).toBe('    ');
    expect(sparkline([0, 8], 4)).toBe('  ▁█');
    expect(sparkline([0, 0, 8, 8], 2)).toBe('▁█');
    expect(sparkline([1, 2, 3, 4, 5, 6, 7, 8], 8)).toHaveLength(8);
    expect(bar(25, 8)).toBe('██░░░░░░');
    expect(bar(150, 4)).toBe('████');
  });
});

describe('top keys', () => {
  const sorts = ['name', 'rps'] as const;
  const start = initialUiState<(typeof sorts)[number]>('name');
  const press = (state: typeof start, ...inputs: Array<string | { key: string }>) =>
    inputs.reduce<typeof start | 'quit'>((s, input) => {
      if (s === 'quit') return s;
      return typeof input === 'string'
        ? reduceKey(s, input, {}, sorts)
        : reduceKey(s, '', { [input.key]: true }, sorts);
    }, state);

  it('q quits, s cycles the sort, p pauses', () => {
    expect(press(start, 'q')).toBe('quit');
    expect(press(start, 's')).toMatchObject({ sort: 'rps' });
    expect(press(start, 's', 's')).toMatchObject({ sort: 'name' });
    expect(press(start, 'p')).toMatchObject({ paused: true });
    expect(press(start, 'p', 'p')).toMatchObject({ paused: false });
  });

  it('/ edits the filter: keys are text until Enter; Backspace deletes; Esc clears', () => {
    expect(press(start, '/', 'a', 'q', 's')).toMatchObject({ filter: 'aqs', editingFilter: true });
    expect(press(start, '/', 'a', 'b', { key: 'delete' }, { key: 'return' })).toMatchObject({
      filter: 'a',
      editingFilter: false,
    });
    expect(press(start, '/', 'a', { key: 'escape' })).toMatchObject({ filter: '', editingFilter: false });
    expect(press(start, '/', 'a', { key: 'return' }, { key: 'escape' })).toMatchObject({ filter: '' });
    expect(press(start, '/', 'alb', { key: 'return' }, 'q')).toBe('quit');
  });
});

describe('module top model', () => {
  it('derives requests per second and the error rate from counter changes', () => {
    const first = moduleNumbers(
      moduleSample(
        { totalRequests: 100, failedRequests: 0, activeConnections: 3 },
        '2026-01-02T03:04:05.000Z',
      ),
      undefined,
    );
    expect(first).toMatchObject({ type: 'ALB', version: '1.0', values: { rps: 0, active: 3 } });
    const second = moduleNumbers(
      moduleSample({ totalRequests: 300, failedRequests: 10 }, '2026-01-02T03:04:07.000Z'),
      first,
    );
    expect(second.values).toMatchObject({ rps: 100, errorPct: 5 });
    // A restart resets the counters: no negative rate.
    const third = moduleNumbers(moduleSample({ totalRequests: 5 }, '2026-01-02T03:04:09.000Z'), second);
    expect(third.values.rps).toBe(0);
  });

  it('sorts and filters instances', () => {
    const instances = [
      { instanceId: 'alb-2', healthStatus: 'HEALTH_STATUS_HEALTHY', currentConnections: 1 },
      { instanceId: 'alb-1', healthStatus: 'HEALTH_STATUS_UNHEALTHY', currentConnections: 9 },
      { instanceId: 'alb-10', healthStatus: 'HEALTH_STATUS_HEALTHY', currentConnections: 5 },
    ];
    const ids = (sort: 'name' | 'connections' | 'status', filter = '') =>
      visibleInstances(instances, sort, filter).map((i) => i.instanceId);
    expect(ids('name')).toEqual(['alb-1', 'alb-2', 'alb-10']);
    expect(ids('connections')).toEqual(['alb-1', 'alb-10', 'alb-2']);
    expect(ids('status')).toEqual(['alb-1', 'alb-2', 'alb-10']);
    expect(ids('name', '10')).toEqual(['alb-10']);
  });
});
