import { Flags } from '@oclif/core';
import { INSTANCE_COLUMNS } from '../nlb-tables.js';
import { age, num } from '../nlb-support.js';
import { enumLabel, formatMap, renderKeyValues, renderTable } from '../output.js';
import { RpcCommand, type InstanceJson } from '../rpc-command.js';

/** GetNLBStatusResponse in protobuf JSON. */
interface NlbStatusJson {
  status?: string;
  version?: string;
  startedAt?: string;
  totalRequests?: number;
  activeConnections?: number;
  registeredModules?: number;
  modulesByType?: Record<string, number>;
  modules?: InstanceJson[];
  details?: Record<string, string>;
}

export default class Status extends RpcCommand {
  static rpc = 'marchproxy.NLBService/GetNLBStatus';
  static override summary = 'Summarise the NLB: health, version, uptime, traffic totals, modules by type';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --modules',
    '<%= config.bin %> <%= command.id %> --json',
  ];

  static override flags = {
    modules: Flags.boolean({ description: 'List the registered instances too' }),
  };

  public async run(): Promise<NlbStatusJson> {
    const { flags } = await this.parse(Status);
    const res = await this.callNlb<NlbStatusJson>(flags, 'GetNLBStatus', { includeModules: flags.modules });
    if (!this.jsonEnabled()) {
      const color = this.color(flags);
      const lines = [
        renderKeyValues(
          [
            ['status', enumLabel(res.status, 'HEALTH_STATUS_')],
            ['version', res.version],
            ['started', res.startedAt ? `${res.startedAt} (up ${age(res.startedAt)})` : undefined],
            ['total requests', num(res.totalRequests)],
            ['active connections', num(res.activeConnections)],
            ['registered modules', num(res.registeredModules)],
            ['modules by type', formatMap(res.modulesByType)],
            ...Object.entries(res.details ?? {}).map(([k, v]) => [k.replace(/_/g, ' '), v] as const),
          ],
          { color, status: ['status'] },
        ),
      ];
      if (flags.modules) {
        const modules = res.modules ?? [];
        lines.push(
          '',
          modules.length
            ? renderTable(modules, INSTANCE_COLUMNS, { color })
            : 'no module instances are registered',
        );
      }
      this.out(lines.join('\n'));
    }
    return res;
  }
}
