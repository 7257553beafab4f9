import { Flags } from '@oclif/core';
import { ModuleCommand, compact, controllerFlags } from '../../module-command.js';
import { enumLabel, renderTable } from '../../output.js';
import { moduleTypeEnum } from '../../rpc-command.js';

interface InstanceJson {
  instanceId?: string;
  healthStatus?: string;
  version?: string;
  trafficAddress?: string;
  currentConnections?: number;
  maxConnections?: number;
  draining?: boolean;
  startedAt?: string;
  metadata?: Record<string, string>;
}

interface GetInstancesJson {
  instances?: InstanceJson[];
  totalInstances?: number;
}

const STATUSES = ['healthy', 'degraded', 'unhealthy', 'starting', 'stopping', 'stopped'];

export default class ModuleInstances extends ModuleCommand {
  static override summary = "List a module controller's instances";
  static override description =
    'One line per instance the controller manages: health, version, connections, the traffic address it listens on, whether it is draining, its pid and when it started.';

  static rpc = 'marchproxy.ModuleService/GetInstances';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --version 2.0 --status healthy --json',
  ];

  static override flags = {
    ...controllerFlags,
    status: Flags.string({ description: 'Only instances with this health', options: STATUSES }),
  };

  public async run(): Promise<GetInstancesJson> {
    const { flags } = await this.parse(ModuleInstances);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<GetInstancesJson>(
      flags,
      address,
      'GetInstances',
      compact({
        moduleType: flags.module ? moduleTypeEnum(flags.module) : undefined,
        statusFilter: flags.status ? `HEALTH_STATUS_${flags.status.toUpperCase()}` : undefined,
      }),
    );
    if (!this.jsonEnabled()) {
      this.out(
        renderTable(
          res.instances ?? [],
          [
            { header: 'INSTANCE', key: 'instanceId' },
            { header: 'STATUS', get: (i) => enumLabel(i.healthStatus), status: true },
            { header: 'VERSION', key: 'version' },
            { header: 'CONNECTIONS', get: (i) => i.currentConnections ?? 0 },
            { header: 'MAX', get: (i) => i.maxConnections || 'unlimited', align: 'right' },
            { header: 'TRAFFIC', key: 'trafficAddress' },
            { header: 'DRAINING', get: (i) => (i.draining ? 'yes' : 'no') },
            { header: 'PID', get: (i) => i.metadata?.pid },
            { header: 'STARTED', key: 'startedAt' },
          ],
          { color: this.color(flags) },
        ),
      );
    }
    return { instances: res.instances ?? [], totalInstances: res.totalInstances ?? 0 };
  }
}
