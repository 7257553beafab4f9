import { Flags } from '@oclif/core';
import { usageFailure } from '../../../exit-codes.js';
import { readStructuredFile } from '../../../file-input.js';
import {
  ModuleCommand,
  compact,
  controllerFlags,
  instanceFlag,
  protocolEnum,
} from '../../../module-command.js';

interface UpdateRoutesJson {
  success?: boolean;
  message?: string;
  routesUpdated?: number;
}

/**
 * The routes in a routes file: a list of routes, `{routes: [...]}`, or one route. Protocols may
 * be written "http" as well as "PROTOCOL_HTTP".
 */
export function routesFromFile(value: unknown, source: string): Array<Record<string, unknown>> {
  const list: unknown = Array.isArray(value)
    ? value
    : typeof value === 'object' && value !== null && 'routes' in value
      ? value.routes
      : value === null || value === undefined
        ? []
        : [value];
  if (!Array.isArray(list)) throw usageFailure(`${source}: "routes" must be a list of routes`);
  return list.map((route, i) => {
    if (typeof route !== 'object' || route === null || Array.isArray(route)) {
      throw usageFailure(`${source}: route ${i + 1} must be a mapping (route_id, protocol, …)`);
    }
    const copy = { ...(route as Record<string, unknown>) };
    if (typeof copy.protocol === 'string') copy.protocol = protocolEnum(copy.protocol);
    return copy;
  });
}

export default class ModuleRoutesApply extends ModuleCommand {
  static override summary = 'Add or replace routes from a YAML or JSON file';
  static override description = `The file holds a list of routes, {routes: [...]}, or a single route; fields are the Route message's (route_id, protocol, destination_pattern, path_pattern, destination_port, headers, priority, …, in snake_case or camelCase; protocol as http or PROTOCOL_HTTP). Routes are validated, stored by the controller and sent to the NLB's routing table. --replace-all removes this controller's routes that are not in the file.

Example file:
  routes:
    - route_id: web
      protocol: http
      destination_pattern: shop.example.com
      path_pattern: /*
      priority: 10`;

  static rpc = 'marchproxy.ModuleService/UpdateRoutes';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb -f routes.yaml',
    '<%= config.bin %> <%= command.id %> --module alb --version 2.0 -f routes.json --replace-all',
    'cat routes.yaml | <%= config.bin %> <%= command.id %> --module alb -f -',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    file: Flags.string({ char: 'f', description: 'Routes as YAML or JSON (- reads stdin)', required: true }),
    'replace-all': Flags.boolean({ description: "Replace all of this controller's routes with the file's" }),
  };

  public async run(): Promise<UpdateRoutesJson> {
    const { flags } = await this.parse(ModuleRoutesApply);
    const source = `--file ${flags.file}`;
    const routes = routesFromFile(await readStructuredFile(flags.file), source);
    if (routes.length === 0 && !flags['replace-all']) {
      throw usageFailure(`${source} holds no routes (pass --replace-all to remove every route)`);
    }
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<UpdateRoutesJson>(
      flags,
      address,
      'UpdateRoutes',
      compact({ instanceId: flags.instance, routes, replaceAll: flags['replace-all'] || undefined }),
      source,
    );
    if (!this.jsonEnabled()) this.out(res.message ?? `${res.routesUpdated ?? 0} route(s) saved`);
    return res;
  }
}
