import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../module-command.js';
import { enumLabel, renderKeyValues, type Cell } from '../../output.js';

interface InstanceJson {
  instanceId?: string;
  healthStatus?: string;
  version?: string;
  address?: string;
  trafficAddress?: string;
  currentConnections?: number;
  maxConnections?: number;
  draining?: boolean;
  startedAt?: string;
  protocols?: string[];
}

interface GetStatusJson {
  instance?: InstanceJson;
  status?: string;
  message?: string;
  lastUpdated?: string;
  details?: Record<string, string>;
}

export default class ModuleStatus extends ModuleCommand {
  static override summary = "Show a module controller's state, or one instance's";
  static override description =
    'Without --instance: the health of the controller (HEALTHY when all desired instances run), its version, address, instance counts, routes, rate limits and where its state is kept. With --instance: that instance, its lease and connections.';

  static rpc = 'marchproxy.ModuleService/GetStatus';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --version 2.0 --instance alb-2',
    '<%= config.bin %> <%= command.id %> --address 127.0.0.1:50051 --json',
  ];

  static override flags = { ...controllerFlags, instance: instanceFlag };

  public async run(): Promise<GetStatusJson> {
    const { flags } = await this.parse(ModuleStatus);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<GetStatusJson>(
      flags,
      address,
      'GetStatus',
      compact({ instanceId: flags.instance }),
    );
    if (!this.jsonEnabled()) {
      const i = res.instance;
      const entries: Array<[string, Cell]> = [
        ['Status', enumLabel(res.status) || 'UNSPECIFIED'],
        ['Message', res.message ?? ''],
        ['Updated', res.lastUpdated ?? ''],
      ];
      if (i) {
        entries.push(
          ['Instance', i.instanceId],
          ['Version', i.version],
          ['Controller', i.address],
          ['Traffic', i.trafficAddress],
          ['Connections', `${i.currentConnections ?? 0}/${i.maxConnections || 'unlimited'}`],
          ['Draining', i.draining ? 'yes' : 'no'],
          ['Started', i.startedAt],
          ['Protocols', (i.protocols ?? []).map((p) => enumLabel(p)).join(', ')],
        );
      }
      const details = Object.entries(res.details ?? {}).sort(([a], [b]) => a.localeCompare(b));
      this.out(renderKeyValues(entries, { color: this.color(flags), status: ['Status'] }));
      if (details.length > 0) this.out(`\n${renderKeyValues(details)}`);
    }
    return res;
  }
}
