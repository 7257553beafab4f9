import { Flags } from '@oclif/core';
import { ROUTE_COLUMNS, ROUTE_FIELDS, type RoutingTableJson } from '../../nlb-tables.js';
import { listingFlags, pageNote, PROTOCOLS, protocolEnum, queryJson } from '../../nlb-support.js';
import { renderTable } from '../../output.js';
import { RpcCommand } from '../../rpc-command.js';

export default class RoutesList extends RpcCommand {
  static rpc = 'marchproxy.NLBService/GetRoutingTable';
  static override summary =
    'List the NLB routing table: routes, the module type they go to, owner, connections';
  static override description =
    'Routes an instance registered are owned by it (OWNER); routes set with `mpctl routes apply` are owned by the operator and survive restarts. Empty match fields show as *. Sorted by priority, highest first, unless --sort says otherwise.';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --protocol http --destination example.com',
    '<%= config.bin %> <%= command.id %> --filter owner=alb-1 --json',
  ];

  static override flags = {
    protocol: Flags.string({ description: 'Only routes of this protocol', options: [...PROTOCOLS] }),
    destination: Flags.string({ description: 'Only routes whose host pattern contains this text' }),
    ...listingFlags(ROUTE_FIELDS),
  };

  public async run(): Promise<RoutingTableJson> {
    const { flags } = await this.parse(RoutesList);
    const res = await this.callNlb<RoutingTableJson>(flags, 'GetRoutingTable', {
      protocolFilter: protocolEnum(flags.protocol) ?? 'PROTOCOL_UNSPECIFIED',
      destinationFilter: flags.destination ?? '',
      query: queryJson(flags, ROUTE_FIELDS),
    });
    if (!this.jsonEnabled()) {
      const entries = res.entries ?? [];
      if (entries.length === 0 && (res.totalEntries ?? 0) === 0) {
        this.out('no routes match; add one with `mpctl routes apply`');
      } else {
        const note = pageNote(res.pagination, 'routes');
        const table = renderTable(entries, ROUTE_COLUMNS, { color: this.color(flags) });
        this.out(note ? `${table}\n${note}` : table);
      }
    }
    return res;
  }
}
