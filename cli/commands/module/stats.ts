import { Flags } from '@oclif/core';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../module-command.js';
import { formatMap, renderKeyValues } from '../../output.js';

interface StatsJson {
  instanceId?: string;
  totalRequests?: number;
  successfulRequests?: number;
  failedRequests?: number;
  activeConnections?: number;
  totalConnections?: number;
  avgLatencyMs?: number;
  p50LatencyMs?: number;
  p95LatencyMs?: number;
  p99LatencyMs?: number;
  bytesReceived?: number;
  bytesSent?: number;
  cpuUsagePercent?: number;
  memoryUsageMb?: number;
  since?: string;
  customStats?: Record<string, string>;
}

const n = (v: number | undefined, digits = 2) => Math.round((v ?? 0) * 10 ** digits) / 10 ** digits;

export default class ModuleStats extends ModuleCommand {
  static override summary = "Show a module's counters: requests, connections, latency, bytes";
  static override description =
    'Without --instance the counters are summed over every instance (latency weighted by requests, p95/p99 the worst instance). --reset zeroes the counters after reading them.';

  static rpc = 'marchproxy.ModuleService/GetStats';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --instance alb-1 --reset --json',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    reset: Flags.boolean({ description: 'Zero the counters after reading them' }),
  };

  public async run(): Promise<{ stats?: StatsJson }> {
    const { flags } = await this.parse(ModuleStats);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<{ stats?: StatsJson }>(
      flags,
      address,
      'GetStats',
      compact({ instanceId: flags.instance, resetCounters: flags.reset || undefined }),
    );
    if (!this.jsonEnabled()) {
      const s = res.stats ?? {};
      this.out(
        renderKeyValues([
          ['Instance', s.instanceId || 'all'],
          [
            'Requests',
            `${n(s.totalRequests)} (${n(s.successfulRequests)} ok, ${n(s.failedRequests)} failed)`,
          ],
          ['Connections', `${n(s.activeConnections)} active, ${n(s.totalConnections)} total`],
          [
            'Latency ms',
            `avg ${n(s.avgLatencyMs)}, p50 ${n(s.p50LatencyMs)}, p95 ${n(s.p95LatencyMs)}, p99 ${n(s.p99LatencyMs)}`,
          ],
          ['Bytes', `${n(s.bytesReceived)} received, ${n(s.bytesSent)} sent`],
          ['CPU %', n(s.cpuUsagePercent)],
          ['Memory MB', n(s.memoryUsageMb)],
          ['Since', s.since ?? ''],
          ['Custom', formatMap(s.customStats)],
        ]),
      );
    }
    return res;
  }
}
