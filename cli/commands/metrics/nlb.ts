import { Flags } from '@oclif/core';
import { durationFlag } from '../../base-command.js';
import {
  SERIES_COLUMNS,
  summariseSeries,
  type MetricPointJson,
  type ModuleMetricsJson,
} from '../../nlb-tables.js';
import { renderTable } from '../../output.js';
import { RpcCommand } from '../../rpc-command.js';

/** GetNLBMetricsResponse in protobuf JSON. */
interface NlbMetricsJson {
  metrics?: MetricPointJson[];
  moduleMetrics?: Record<string, ModuleMetricsJson>;
  collectedAt?: string;
}

export default class MetricsNlb extends RpcCommand {
  static rpc = 'marchproxy.NLBService/GetNLBMetrics';
  static override summary = "Show the NLB's metric series (its own and per module) over a time window";
  static override description =
    'One row per series: where it comes from (nlb, an instance id, or type@version with --aggregate), its name and labels, the number of samples in the window and the latest, lowest and highest value. --json gives every sample.';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --name connections_active --since 10m',
    '<%= config.bin %> <%= command.id %> --aggregate --json',
  ];

  static override flags = {
    name: Flags.string({ description: 'Only this metric (repeatable)', multiple: true }),
    since: durationFlag({
      description: 'Window: samples from this long ago until now, e.g. 10m',
      default: 3_600_000,
      defaultHelp: () => Promise.resolve('1h'),
    }),
    aggregate: Flags.boolean({ description: 'Per module type and version instead of per instance' }),
  };

  public async run(): Promise<NlbMetricsJson> {
    const { flags } = await this.parse(MetricsNlb);
    const end = Date.now();
    const res = await this.callNlb<NlbMetricsJson>(flags, 'GetNLBMetrics', {
      metricNames: flags.name ?? [],
      startTime: new Date(end - flags.since).toISOString(),
      endTime: new Date(end).toISOString(),
      aggregate: flags.aggregate,
    });
    if (!this.jsonEnabled()) {
      const rows = summariseSeries([
        ['nlb', res.metrics],
        ...Object.entries(res.moduleMetrics ?? {}).map(([key, m]) => [key, m.metrics] as const),
      ]);
      this.out(rows.length ? renderTable(rows, SERIES_COLUMNS) : 'no samples in the window');
    }
    return res;
  }
}
