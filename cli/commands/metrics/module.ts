import { Args, Flags } from '@oclif/core';
import { durationFlag } from '../../base-command.js';
import { SERIES_COLUMNS, summariseSeries, type ModuleMetricsJson } from '../../nlb-tables.js';
import { renderTable } from '../../output.js';
import { RpcCommand } from '../../rpc-command.js';

/** GetModuleMetricsResponse in protobuf JSON. */
interface ModuleMetricsResponseJson {
  metrics?: ModuleMetricsJson;
  collectedAt?: string;
}

export default class MetricsModule extends RpcCommand {
  static rpc = 'marchproxy.NLBService/GetModuleMetrics';
  static override summary = "Show one instance's metric series stored in the NLB over a time window";
  static override examples = [
    '<%= config.bin %> <%= command.id %> alb-1',
    '<%= config.bin %> <%= command.id %> alb-1 --name requests_total --since 10m --json',
  ];

  static override args = {
    instance: Args.string({ description: 'Instance id', required: true }),
  };

  static override flags = {
    name: Flags.string({ description: 'Only this metric (repeatable)', multiple: true }),
    since: durationFlag({
      description: 'Window: samples from this long ago until now, e.g. 10m',
      default: 3_600_000,
      defaultHelp: () => Promise.resolve('1h'),
    }),
  };

  public async run(): Promise<ModuleMetricsResponseJson> {
    const { args, flags } = await this.parse(MetricsModule);
    const end = Date.now();
    const res = await this.callNlb<ModuleMetricsResponseJson>(flags, 'GetModuleMetrics', {
      instanceId: args.instance,
      metricNames: flags.name ?? [],
      startTime: new Date(end - flags.since).toISOString(),
      endTime: new Date(end).toISOString(),
    });
    if (!this.jsonEnabled()) {
      const rows = summariseSeries([[args.instance, res.metrics?.metrics]]);
      this.out(
        rows.length ? renderTable(rows, SERIES_COLUMNS) : `no samples of ${args.instance} in the window`,
      );
    }
    return res;
  }
}
