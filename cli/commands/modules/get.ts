import { Args } from '@oclif/core';
import { enumLabel, formatMap, renderKeyValues, renderTable } from '../../output.js';
import { RpcCommand, type InstanceJson } from '../../rpc-command.js';
import { age, num, yesNo } from '../../nlb-support.js';
import { ROUTE_COLUMNS, type RouteJson } from '../../nlb-tables.js';

/** GetModuleInfoResponse in protobuf JSON. */
export interface ModuleInfoJson {
  instance?: InstanceJson;
  routes?: RouteJson[];
  stats?: Record<string, number | string | undefined>;
  deploymentConfig?: Record<string, unknown>;
  details?: Record<string, string>;
}

export default class ModulesGet extends RpcCommand {
  static rpc = 'marchproxy.NLBService/GetModuleInfo';
  static override summary = 'Show one registered instance: registration, health, routes, last stats';
  static override examples = [
    '<%= config.bin %> <%= command.id %> alb-1',
    '<%= config.bin %> <%= command.id %> alb-1 --json',
  ];

  static override args = {
    instance: Args.string({ description: 'Instance id', required: true }),
  };

  public async run(): Promise<ModuleInfoJson> {
    const { args, flags } = await this.parse(ModulesGet);
    const info = await this.callNlb<ModuleInfoJson>(flags, 'GetModuleInfo', { instanceId: args.instance });
    if (!this.jsonEnabled()) this.out(this.render(info, this.color(flags)));
    return info;
  }

  private render(info: ModuleInfoJson, color: boolean): string {
    const i = info.instance ?? {};
    const d = info.details ?? {};
    const s = info.stats ?? {};
    const dep = info.deploymentConfig ?? {};
    const lines = [
      renderKeyValues(
        [
          ['instance', i.instanceId],
          ['type', enumLabel(i.moduleType, 'MODULE_TYPE_')],
          ['version', i.version],
          ['status', enumLabel(i.healthStatus, 'HEALTH_STATUS_')],
          ['reported status', d.reported_status],
          ['draining', yesNo(i.draining)],
          ['controller', i.address],
          ['traffic address', i.trafficAddress as string | undefined],
          ['protocols', ((i.protocols as string[] | undefined) ?? []).map((p) => enumLabel(p)).join(', ')],
          [
            'connections',
            `${num(i.currentConnections)} of ${num(i.maxConnections) === '0' ? 'unlimited' : num(i.maxConnections)}`,
          ],
          ['traffic weight', `${num(i.trafficWeight)}%`],
          ['registration id', d.registration_id],
          ['registered', d.registered_at ? `${d.registered_at} (${age(d.registered_at)} ago)` : undefined],
          [
            'last heartbeat',
            d.last_heartbeat ? `${d.last_heartbeat} (${age(d.last_heartbeat)} ago)` : undefined,
          ],
          ['rollout', d.rollout_phase ? `${d.rollout_phase} (${d.version_weights ?? ''})` : undefined],
          ['active version', dep.activeVersion as string | undefined],
          ['requests', `${num(s.totalRequests)} (${num(s.failedRequests)} failed)`],
          [
            'latency ms',
            `avg ${num(s.avgLatencyMs)}, p95 ${num(s.p95LatencyMs)}, p99 ${num(s.p99LatencyMs)}`,
          ],
          ['cpu', `${num(s.cpuUsagePercent)}%`],
          ['memory', `${num(s.memoryUsageMb)} MB`],
          ['metadata', formatMap(i.metadata as Record<string, string> | undefined)],
        ],
        { color, status: ['status'] },
      ),
    ];
    const routes = info.routes ?? [];
    lines.push('', routes.length ? `routes (${routes.length}):` : 'routes: none');
    if (routes.length) {
      lines.push(
        renderTable(
          routes.map((route) => ({ route, targetInstanceId: i.instanceId })),
          ROUTE_COLUMNS.filter((c) => c.header !== 'OWNER' && c.header !== 'CONNS'),
          { color },
        ),
      );
    }
    return lines.join('\n');
  }
}
