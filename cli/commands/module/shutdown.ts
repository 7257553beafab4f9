import { Flags } from '@oclif/core';
import {
  ModuleCommand,
  compact,
  controllerFlags,
  gracePeriodFlag,
  toSeconds,
  withWait,
} from '../../module-command.js';

interface ShutdownJson {
  success?: boolean;
  message?: string;
}

export default class ModuleShutdown extends ModuleCommand {
  static override summary = 'Stop one instance, or the whole controller and all its instances';
  static override description =
    'With --instance: that instance stops and the desired count drops by one. Without it: the controller stops every instance and then exits; the NLB stops sending it traffic. Shutdown is graceful (instances drain first, up to --grace-period) unless --no-graceful.';

  static rpc = 'marchproxy.ModuleService/Shutdown';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb --instance alb-2',
    '<%= config.bin %> <%= command.id %> --module alb --version 1.0 --grace-period 1m',
    '<%= config.bin %> <%= command.id %> --address 127.0.0.1:50051 --no-graceful',
  ];

  static override flags = {
    ...controllerFlags,
    instance: Flags.string({
      description: 'Stop only this instance, e.g. alb-1 (default: the controller and all its instances)',
    }),
    graceful: Flags.boolean({
      description: 'Drain open connections first; --no-graceful stops at once',
      allowNo: true,
      default: true,
    }),
    'grace-period': gracePeriodFlag,
  };

  public async run(): Promise<ShutdownJson> {
    const { flags } = await this.parse(ModuleShutdown);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<ShutdownJson>(
      withWait(flags, flags['grace-period']),
      address,
      'Shutdown',
      compact({
        instanceId: flags.instance,
        graceful: flags.graceful || undefined,
        timeoutSeconds: toSeconds(flags['grace-period']),
      }),
    );
    if (!this.jsonEnabled()) this.out(res.message ?? 'shutting down');
    return res;
  }
}
