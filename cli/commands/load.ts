import { num, typeFlag } from '../nlb-support.js';
import { renderTable } from '../output.js';
import { moduleTypeEnum, RpcCommand } from '../rpc-command.js';

/** A LoadInfo in protobuf JSON. */
interface LoadInfoJson {
  instanceId?: string;
  activeConnections?: number;
  cpuUsagePercent?: number;
  memoryUsageMb?: number;
  requestsPerSecond?: number;
  avgLatencyMs?: number;
  queueDepth?: number;
  loadScore?: number;
}

/** GetLoadDistributionResponse in protobuf JSON. */
interface LoadJson {
  distribution?: Record<string, LoadInfoJson>;
  balanceScore?: number;
  measuredAt?: string;
}

export default class Load extends RpcCommand {
  static rpc = 'marchproxy.NLBService/GetLoadDistribution';
  static override summary = 'Show per-instance load and the balance score (100 = perfectly even)';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --type alb --json',
  ];

  static override flags = {
    type: typeFlag({ description: 'Only instances of this module type' }),
  };

  public async run(): Promise<LoadJson> {
    const { flags } = await this.parse(Load);
    const res = await this.callNlb<LoadJson>(flags, 'GetLoadDistribution', {
      moduleTypeFilter: flags.type ? moduleTypeEnum(flags.type) : 'MODULE_TYPE_UNSPECIFIED',
    });
    if (!this.jsonEnabled()) {
      const rows = Object.entries(res.distribution ?? {})
        .map(([id, l]) => ({ ...l, instanceId: l.instanceId || id }))
        .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
      const table = rows.length
        ? renderTable(rows, [
            { header: 'INSTANCE', get: (l) => l.instanceId },
            { header: 'CONNS', get: (l) => l.activeConnections ?? 0 },
            { header: 'CPU%', get: (l) => num(l.cpuUsagePercent), align: 'right' },
            { header: 'MEM_MB', get: (l) => num(l.memoryUsageMb), align: 'right' },
            { header: 'RPS', get: (l) => l.requestsPerSecond ?? 0 },
            { header: 'LATENCY_MS', get: (l) => num(l.avgLatencyMs), align: 'right' },
            { header: 'QUEUE', get: (l) => l.queueDepth ?? 0 },
            { header: 'SCORE', get: (l) => num(l.loadScore), align: 'right' },
          ])
        : 'no instances';
      this.out(`${table}\n\nbalance score: ${num(res.balanceScore)}`);
    }
    return res;
  }
}
