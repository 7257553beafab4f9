import { Flags } from '@oclif/core';
import { CliFailure, ExitCode, usageFailure } from '../../exit-codes.js';
import { asObject, fileFlag, readStructuredFile } from '../../file-input.js';
import { expandEnums, keyValueFlag, routeFlags, routeFromFlags, toMap, typeFlag } from '../../nlb-support.js';
import { formatMap, renderKeyValues } from '../../output.js';
import { RpcCommand } from '../../rpc-command.js';

/** ValidateRouteResponse in protobuf JSON. */
interface ValidateRouteJson {
  valid?: boolean;
  hasHandler?: boolean;
  capableInstances?: string[];
  validationErrors?: string[];
  details?: Record<string, string>;
}

export default class RoutesValidate extends RpcCommand {
  static rpc = 'marchproxy.NLBService/ValidateRoute';
  static override summary = 'Check one route: syntax, conflicts, and whether a healthy instance can serve it';
  static override description =
    'Changes nothing. -f takes one route in YAML or JSON (enum values may be short: protocol: http); otherwise the route flags describe it. An invalid route exits 6 listing every problem; a valid route without a healthy handler exits 0 and says so.';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --protocol http --host example.com --path /api/* --module alb',
    '<%= config.bin %> <%= command.id %> -f route.yaml --json',
  ];

  static override flags = {
    file: { ...fileFlag, description: 'One route, YAML or JSON (- reads stdin)' },
    id: Flags.string({ description: 'Route id' }),
    ...routeFlags,
    priority: Flags.integer({ description: 'Priority' }),
    module: typeFlag({ description: 'Module type that serves the route (metadata.module_type)' }),
    metadata: keyValueFlag({ description: 'Route metadata, key=value (repeatable)' }),
  };

  public async run(): Promise<ValidateRouteJson> {
    const { flags } = await this.parse(RoutesValidate);
    const source = flags.file ? `--file ${flags.file}` : 'the route flags';
    let route: Record<string, unknown>;
    if (flags.file) {
      const doc = asObject(expandEnums(await readStructuredFile(flags.file)), source);
      route = 'route' in doc ? asObject(doc.route, `${source}: route`) : doc;
    } else {
      const metadata = toMap(flags.metadata);
      if (flags.module) metadata.module_type = flags.module.toUpperCase();
      route = routeFromFlags(flags, {
        ...(flags.id ? { routeId: flags.id } : {}),
        ...(flags.priority !== undefined ? { priority: flags.priority } : {}),
        ...(Object.keys(metadata).length ? { metadata } : {}),
      });
      if (Object.keys(route).length === 0) {
        throw usageFailure('describe the route: -f file, or route flags such as --protocol, --host, --path');
      }
    }
    const res = await this.callNlb<ValidateRouteJson>(flags, 'ValidateRoute', { route }, source);
    const errors = res.validationErrors ?? [];
    if (!res.valid) {
      throw new CliFailure(
        `the route is invalid: ${errors.join('; ') || 'no reason given'}`,
        ExitCode.domain,
        'INVALID_ROUTE',
        this.jsonEnabled() ? res : undefined,
      );
    }
    if (!this.jsonEnabled()) {
      const capable = res.capableInstances ?? [];
      this.out(
        renderKeyValues([
          ['valid', 'yes'],
          ['has handler', res.hasHandler ? 'yes' : 'no (no healthy instance can serve it now)'],
          ['capable instances', capable.join(', ')],
          ['details', formatMap(res.details)],
        ]),
      );
    }
    return res;
  }
}
