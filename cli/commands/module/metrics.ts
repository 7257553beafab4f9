import { Flags } from '@oclif/core';
import { durationFlag } from '../../base-command.js';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../module-command.js';
import { renderTable } from '../../output.js';

interface PointJson {
  name?: string;
  value?: number;
  labels?: Record<string, string>;
  timestamp?: string;
}

interface GetMetricsJson {
  metrics?: { instanceId?: string; moduleType?: string; metrics?: PointJson[]; collectedAt?: string };
  collectedAt?: string;
}

interface SeriesRow {
  name: string;
  points: number;
  latest: number;
  min: number;
  max: number;
  at: string;
}

/** One row per metric name: how many samples, the latest, the smallest and the largest. */
export function summarise(points: readonly PointJson[]): SeriesRow[] {
  const rows = new Map<string, SeriesRow>();
  for (const p of points) {
    const name = p.name ?? '';
    const value = p.value ?? 0;
    const at = p.timestamp ?? '';
    const row = rows.get(name);
    if (!row) {
      rows.set(name, { name, points: 1, latest: value, min: value, max: value, at });
      continue;
    }
    row.points++;
    row.min = Math.min(row.min, value);
    row.max = Math.max(row.max, value);
    if (at >= row.at) {
      row.latest = value;
      row.at = at;
    }
  }
  return [...rows.values()].sort((a, b) => a.name.localeCompare(b.name));
}

const round = (n: number) => Math.round(n * 100) / 100;

export default class ModuleMetrics extends ModuleCommand {
  static override summary = "Show a module's sampled metrics over a time range";
  static override description =
    'The controller samples its instances every 5 s (requests, failures, connections, latency, bytes, CPU, memory). People get one line per metric with the number of samples, the latest value and the range; --json returns every sample.';

  static rpc = 'marchproxy.ModuleService/GetMetrics';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --instance alb-1 --since 10m --name requests_total --name latency_p99_ms',
    '<%= config.bin %> <%= command.id %> --module alb --json',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    name: Flags.string({ description: 'Only this metric, e.g. requests_total (repeatable)', multiple: true }),
    since: durationFlag({ description: 'How far back to look, e.g. 15m', default: 3_600_000 }),
  };

  public async run(): Promise<GetMetricsJson> {
    const { flags } = await this.parse(ModuleMetrics);
    const address = await this.moduleAddress(flags, flags);
    const end = Date.now();
    const res = await this.callModule<GetMetricsJson>(
      flags,
      address,
      'GetMetrics',
      compact({
        instanceId: flags.instance,
        metricNames: flags.name,
        startTime: new Date(end - flags.since).toISOString(),
        endTime: new Date(end).toISOString(),
      }),
    );
    if (!this.jsonEnabled()) {
      const rows = summarise(res.metrics?.metrics ?? []);
      if (rows.length === 0) {
        this.out('no samples in that range (the controller samples every 5 s)');
      } else {
        this.out(
          renderTable(rows, [
            { header: 'METRIC', key: 'name' },
            { header: 'LATEST', get: (r) => round(r.latest) },
            { header: 'MIN', get: (r) => round(r.min) },
            { header: 'MAX', get: (r) => round(r.max) },
            { header: 'SAMPLES', key: 'points' },
            { header: 'AT', key: 'at' },
          ]),
        );
      }
    }
    return res;
  }
}
