import { setTimeout as sleep } from 'node:timers/promises';
import { Flags } from '@oclif/core';
import { durationFlag } from '../../base-command.js';
import {
  HEALTH_STATUSES,
  healthEnum,
  listingFlags,
  pageNote,
  queryJson,
  typeFlag,
} from '../../nlb-support.js';
import { INSTANCE_COLUMNS, INSTANCE_FIELDS, type ListModulesJson } from '../../nlb-tables.js';
import { renderTable } from '../../output.js';
import { moduleTypeEnum, RpcCommand, type RpcFlags } from '../../rpc-command.js';

export default class ModulesList extends RpcCommand {
  static rpc = 'marchproxy.NLBService/ListModules';
  static override summary = 'List the module instances registered with the NLB';
  static override description =
    'One row per instance: id, type, version, health, controller (ModuleService) address, traffic address, open connections, connection limit and its version traffic weight. With --watch the table is re-drawn whenever it changes, every --interval, until Ctrl-C (with --json: one JSON line per change).';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --type alb --status healthy --sort current_connections --desc',
    '<%= config.bin %> <%= command.id %> --filter version=2.0 --filter current_connections>10',
    '<%= config.bin %> <%= command.id %> --watch --interval 1s',
    '<%= config.bin %> <%= command.id %> --json',
  ];

  static override flags = {
    type: typeFlag({ description: 'Only instances of this module type' }),
    status: Flags.string({
      description: 'Only instances in this health status',
      options: [...HEALTH_STATUSES],
    }),
    ...listingFlags(INSTANCE_FIELDS),
    watch: Flags.boolean({ char: 'w', description: 'Re-draw the table when it changes, until Ctrl-C' }),
    interval: durationFlag({
      description: 'With --watch: time between refreshes, e.g. 2s',
      default: 2000,
      defaultHelp: () => Promise.resolve('2s'),
    }),
  };

  public async run(): Promise<ListModulesJson | undefined> {
    const { flags } = await this.parse(ModulesList);
    const request = {
      moduleTypeFilter: flags.type ? moduleTypeEnum(flags.type) : 'MODULE_TYPE_UNSPECIFIED',
      statusFilter: healthEnum(flags.status) ?? 'HEALTH_STATUS_UNSPECIFIED',
      query: queryJson(flags, INSTANCE_FIELDS),
    };
    const fetch = () => this.callNlb<ListModulesJson>(flags, 'ListModules', request);
    if (flags.watch) {
      await this.watch(flags, fetch, flags.interval);
      return undefined;
    }
    const response = await fetch();
    if (!this.jsonEnabled()) this.out(this.render(response, flags));
    return response;
  }

  private render(response: ListModulesJson, flags: RpcFlags): string {
    const modules = response.modules ?? [];
    if (modules.length === 0 && (response.totalModules ?? 0) === 0) {
      return 'no module instances match; start one with `mpctl serve module alb --version 1.0`';
    }
    const note = pageNote(response.pagination, 'instances');
    const table = renderTable(modules, INSTANCE_COLUMNS, { color: this.color(flags) });
    return note ? `${table}\n${note}` : table;
  }

  /** Polls every `intervalMs` and prints when the result changes, until Ctrl-C. */
  private async watch(flags: RpcFlags, fetch: () => Promise<ListModulesJson>, intervalMs: number) {
    const tty = process.stdout.isTTY === true && !this.jsonEnabled();
    await this.untilInterrupted(async (signal) => {
      let last: string | undefined;
      while (!signal.aborted) {
        const response = await fetch();
        const text = this.jsonEnabled() ? JSON.stringify(response) : this.render(response, flags);
        if (text !== last) {
          if (tty)
            this.out(
              `\x1b[2J\x1b[H${new Date().toLocaleTimeString()}  every ${intervalMs}ms, Ctrl-C to stop\n`,
            );
          else if (last !== undefined && !this.jsonEnabled()) this.out('');
          this.out(text);
          last = text;
        }
        await sleep(intervalMs, undefined, { signal }).catch(() => undefined);
      }
    });
  }
}
