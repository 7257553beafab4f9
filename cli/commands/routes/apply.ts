import { Flags } from '@oclif/core';
import { usageFailure } from '../../exit-codes.js';
import { fileFlag, readStructuredFile } from '../../file-input.js';
import { expandEnums, keyValueFlag, routeFlags, routeFromFlags, toMap, typeFlag } from '../../nlb-support.js';
import { renderKeyValues } from '../../output.js';
import { RpcCommand } from '../../rpc-command.js';

/** UpdateRoutingResponse in protobuf JSON. */
interface UpdateRoutingJson {
  success?: boolean;
  message?: string;
  routesUpdated?: number;
  validationErrors?: string[];
}

export default class RoutesApply extends RpcCommand {
  static rpc = 'marchproxy.NLBService/UpdateRouting';
  static override summary = 'Add or replace routes in the NLB routing table (from a file or flags)';
  static override description = `-f takes YAML or JSON: a list of routes, or an object with "routes" (and optionally replace_all, source_instance_id). Each route has route_id (generated when empty), protocol, source_pattern, destination_pattern, destination_port, path_pattern, headers, priority and metadata; enum values may be short (protocol: http). A route names the module type that serves it with metadata.module_type (or --module), unless its protocol implies one.

Without -f, the route flags describe one route. Routes are checked first; when any is invalid nothing is applied and the command exits 6 listing the problems. --dry-run only checks (validate_only). --replace-all removes the owner's other routes.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %> -f routes.yaml',
    '<%= config.bin %> <%= command.id %> -f routes.yaml --replace-all --dry-run',
    '<%= config.bin %> <%= command.id %> --id web --protocol http --host example.com --path /api/* --module alb --priority 10',
  ];

  static override flags = {
    file: fileFlag,
    id: Flags.string({ description: 'Route id (replaces the route with that id); generated when empty' }),
    ...routeFlags,
    priority: Flags.integer({ description: 'Higher wins when several routes match' }),
    module: typeFlag({ description: 'Module type that serves the route (metadata.module_type)' }),
    metadata: keyValueFlag({ description: 'Route metadata, key=value (repeatable)' }),
    'replace-all': Flags.boolean({ description: "Replace all of the owner's routes with these" }),
    owner: Flags.string({ description: 'Instance that owns the routes [default: the operator]' }),
    'dry-run': Flags.boolean({ description: 'Only validate (validate_only); change nothing' }),
  };

  public async run(): Promise<UpdateRoutingJson> {
    const { flags } = await this.parse(RoutesApply);
    const source = flags.file ? `--file ${flags.file}` : 'the route flags';
    let request: Record<string, unknown>;
    if (flags.file) {
      const doc = expandEnums(await readStructuredFile(flags.file));
      if (Array.isArray(doc)) request = { routes: doc };
      else if (typeof doc === 'object' && doc !== null && 'routes' in doc) request = { ...(doc as object) };
      else throw usageFailure(`${source} must hold a list of routes or an object with "routes"`);
    } else {
      const metadata = toMap(flags.metadata);
      if (flags.module) metadata.module_type = flags.module.toUpperCase();
      const route = routeFromFlags(flags, {
        ...(flags.id ? { routeId: flags.id } : {}),
        ...(flags.priority !== undefined ? { priority: flags.priority } : {}),
        ...(Object.keys(metadata).length ? { metadata } : {}),
      });
      if (!route.protocol && !route.destinationPattern && !route.pathPattern && !route.destinationPort) {
        throw usageFailure(
          'describe the route: -f file, or at least one of --protocol, --host, --port, --path',
        );
      }
      request = { routes: [route] };
    }
    if (flags['replace-all']) request.replaceAll = true;
    if (flags.owner) request.sourceInstanceId = flags.owner;
    if (flags['dry-run']) request.validateOnly = true;
    const res = await this.callNlb<UpdateRoutingJson>(flags, 'UpdateRouting', request, source);
    if (!this.jsonEnabled()) {
      this.out(
        renderKeyValues([
          ['result', res.message],
          ['routes updated', res.routesUpdated ?? 0],
        ]),
      );
    }
    return res;
  }
}
