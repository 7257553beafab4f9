import { Args, Flags } from '@oclif/core';
import { durationFlag } from '../../base-command.js';
import { toSeconds } from '../../nlb-support.js';
import { RpcCommand } from '../../rpc-command.js';

/** UnregisterModuleResponse in protobuf JSON. */
interface UnregisterJson {
  success?: boolean;
  message?: string;
  activeConnectionsDrained?: number;
}

export default class ModulesUnregister extends RpcCommand {
  static rpc = 'marchproxy.NLBService/UnregisterModule';
  static override summary = 'Remove an instance from the NLB registry, at once or after draining';
  static override description =
    'Without --graceful the instance and the routes it owns go at once. With --graceful the NLB first stops sending it new connections and waits for the open ones to end, at most --drain-timeout. The registration id is optional for an operator.';

  static override examples = [
    '<%= config.bin %> <%= command.id %> alb-1',
    '<%= config.bin %> <%= command.id %> alb-1 --graceful --drain-timeout 30s',
  ];

  static override args = {
    instance: Args.string({ description: 'Instance id', required: true }),
  };

  static override flags = {
    'registration-id': Flags.string({ description: 'Registration id from register (checked when given)' }),
    graceful: Flags.boolean({ description: 'Drain first: no new connections, wait for open ones' }),
    'drain-timeout': durationFlag({
      description: 'Upper bound of a graceful drain, e.g. 30s [default: the NLB’s]',
    }),
  };

  public async run(): Promise<UnregisterJson> {
    const { args, flags } = await this.parse(ModulesUnregister);
    const res = await this.callNlb<UnregisterJson>(flags, 'UnregisterModule', {
      instanceId: args.instance,
      registrationId: flags['registration-id'] ?? '',
      graceful: flags.graceful,
      drainTimeoutSeconds: flags['drain-timeout'] === undefined ? 0 : toSeconds(flags['drain-timeout']),
    });
    if (!this.jsonEnabled()) this.out(res.message ?? `${args.instance} unregistered`);
    return res;
  }
}
