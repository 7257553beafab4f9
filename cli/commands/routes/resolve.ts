import { Flags } from '@oclif/core';
import { CliFailure, ExitCode, usageFailure } from '../../exit-codes.js';
import { keyValueFlag, routeFlags, routeFromFlags, toMap } from '../../nlb-support.js';
import { enumLabel, renderKeyValues } from '../../output.js';
import { RpcCommand } from '../../rpc-command.js';

/** RouteRequestResponse in protobuf JSON. */
interface RouteRequestJson {
  routed?: boolean;
  targetInstanceId?: string;
  targetModuleType?: string;
  targetAddress?: string;
  priority?: number;
  message?: string;
  error?: { code?: string; message?: string };
}

export default class RoutesResolve extends RpcCommand {
  static rpc = 'marchproxy.NLBService/RouteRequest';
  static override summary =
    'Ask the NLB where a described request would go (route match, CanHandle, weights)';
  static override description =
    "Runs the same selection the data plane runs for a new connection: the best matching route, then the capable instances (CanHandle with --context), the version weights and least connections. Without --dry-run the choice counts as a use of the route and instance. When nothing can take the request it exits 3 (no route or no instance) or 6, with the NLB's reason.";

  static override examples = [
    '<%= config.bin %> <%= command.id %> --protocol http --host example.com --path /api/users --dry-run',
    '<%= config.bin %> <%= command.id %> --protocol postgres --port 5432 --context database=orders',
  ];

  static override flags = {
    ...routeFlags,
    context: keyValueFlag({
      description: 'Fact for CanHandle, key=value, e.g. database=orders, model=gpt-4 (repeatable)',
    }),
    'dry-run': Flags.boolean({ description: 'Choose a target without counting it as used' }),
  };

  public async run(): Promise<RouteRequestJson> {
    const { flags } = await this.parse(RoutesResolve);
    const route = routeFromFlags(flags);
    if (Object.keys(route).length === 0) {
      throw usageFailure(
        'describe the request: at least one of --protocol, --host, --port, --path, --header',
      );
    }
    const res = await this.callNlb<RouteRequestJson>(flags, 'RouteRequest', {
      route,
      context: toMap(flags.context),
      dryRun: flags['dry-run'],
    });
    if (!res.routed) {
      const notFound = res.error?.code === 'STATUS_CODE_NOT_FOUND';
      throw new CliFailure(
        `not routed: ${res.message || res.error?.message || 'no reason given'}`,
        notFound ? ExitCode.notFound : ExitCode.domain,
        res.error?.code ?? 'NOT_ROUTED',
        this.jsonEnabled() ? res : undefined,
      );
    }
    if (!this.jsonEnabled()) {
      this.out(
        renderKeyValues([
          ['instance', res.targetInstanceId],
          ['module', enumLabel(res.targetModuleType, 'MODULE_TYPE_')],
          ['address', res.targetAddress],
          ['priority', res.priority ?? 0],
          ['message', res.message],
          ['dry run', flags['dry-run'] ? 'yes' : 'no'],
        ]),
      );
    }
    return res;
  }
}
