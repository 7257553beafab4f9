import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../../module-command.js';
import { enumLabel, formatMap, renderTable } from '../../../output.js';

export interface RouteJson {
  routeId?: string;
  protocol?: string;
  sourcePattern?: string;
  destinationPattern?: string;
  sourcePort?: number;
  destinationPort?: number;
  headers?: Record<string, string>;
  pathPattern?: string;
  priority?: number;
}

interface GetRoutesJson {
  routes?: RouteJson[];
  totalRoutes?: number;
  pagination?: { totalPages?: number };
}

const PAGE_SIZE = 1000;

export default class ModuleRoutesList extends ModuleCommand {
  static override summary = "List a module controller's routes";
  static override description =
    'The routes this controller owns (and has sent to the NLB), sorted by id: protocol, source, destination, port, path, headers and priority.';

  static rpc = 'marchproxy.ModuleService/GetRoutes';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --version 2.0 --json',
  ];

  static override flags = { ...controllerFlags, instance: instanceFlag };

  public async run(): Promise<{ routes: RouteJson[]; totalRoutes: number }> {
    const { flags } = await this.parse(ModuleRoutesList);
    const address = await this.moduleAddress(flags, flags);
    const routes: RouteJson[] = [];
    for (let page = 1; ; page++) {
      const res = await this.callModule<GetRoutesJson>(
        flags,
        address,
        'GetRoutes',
        compact({ instanceId: flags.instance, query: { pagination: { page, pageSize: PAGE_SIZE } } }),
      );
      routes.push(...(res.routes ?? []));
      if (page >= (res.pagination?.totalPages ?? 1)) break;
    }
    if (!this.jsonEnabled()) {
      this.out(
        renderTable(routes, [
          { header: 'ID', key: 'routeId' },
          { header: 'PROTOCOL', get: (r) => enumLabel(r.protocol) },
          { header: 'SOURCE', key: 'sourcePattern' },
          { header: 'DESTINATION', key: 'destinationPattern' },
          { header: 'PORT', get: (r) => r.destinationPort },
          { header: 'PATH', key: 'pathPattern' },
          { header: 'HEADERS', get: (r) => (r.headers ? formatMap(r.headers) : undefined) },
          { header: 'PRIORITY', get: (r) => r.priority ?? 0 },
        ]),
      );
    }
    return { routes, totalRoutes: routes.length };
  }
}
