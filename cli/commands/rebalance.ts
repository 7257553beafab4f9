import { Flags } from '@oclif/core';
import { renderTable } from '../output.js';
import { RpcCommand } from '../rpc-command.js';

/** RebalanceLoadResponse in protobuf JSON. */
interface RebalanceJson {
  success?: boolean;
  message?: string;
  previousDistribution?: Record<string, number>;
  newDistribution?: Record<string, number>;
}

export default class Rebalance extends RpcCommand {
  static rpc = 'marchproxy.NLBService/RebalanceLoad';
  static override summary = 'Recompute instance preferences so that new connections even out';
  static override description =
    'Open connections are never moved; new ones go preferentially to the less loaded instances. Without --force nothing happens when the load is already balanced. Prints each instance’s value before and after.';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --strategy round-robin --force',
    '<%= config.bin %> <%= command.id %> --target alb-1 --target alb-2',
  ];

  static override flags = {
    strategy: Flags.string({
      description: 'How to rebalance',
      options: ['least-conn', 'round-robin'],
      default: 'least-conn',
    }),
    force: Flags.boolean({ description: 'Rebalance even when the load is already balanced' }),
    target: Flags.string({ description: 'Only this instance (repeatable) [default: all]', multiple: true }),
  };

  public async run(): Promise<RebalanceJson> {
    const { flags } = await this.parse(Rebalance);
    const res = await this.callNlb<RebalanceJson>(flags, 'RebalanceLoad', {
      force: flags.force,
      targetInstances: flags.target ?? [],
      strategy: flags.strategy,
    });
    if (!this.jsonEnabled()) {
      const before = res.previousDistribution ?? {};
      const after = res.newDistribution ?? {};
      const ids = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
      const lines = [res.message ?? 'rebalanced'];
      if (ids.length) {
        lines.push(
          '',
          renderTable(
            ids.map((id) => ({ id, before: before[id] ?? 0, after: after[id] ?? 0 })),
            [
              { header: 'INSTANCE', key: 'id' },
              { header: 'BEFORE', key: 'before' },
              { header: 'AFTER', key: 'after' },
            ],
          ),
        );
      }
      this.out(lines.join('\n'));
    }
    return res;
  }
}
