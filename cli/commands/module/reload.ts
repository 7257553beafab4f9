import { Flags } from '@oclif/core';
import {
  ModuleCommand,
  compact,
  controllerFlags,
  gracePeriodFlag,
  instanceFlag,
  toSeconds,
  withWait,
} from '../../module-command.js';

interface ReloadJson {
  success?: boolean;
  message?: string;
}

export default class ModuleReload extends ModuleCommand {
  static override summary = 'Re-read the stored configuration and push it to every instance';
  static override description =
    'The controller reloads routes, rate limits and module config from its state store and pushes them to its instances. --graceful keeps open connections on the old settings. A push that fails on some instance exits 6 and names the instance.';

  static rpc = 'marchproxy.ModuleService/Reload';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --version 2.0 --graceful --grace-period 1m',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    graceful: Flags.boolean({ description: 'Keep open connections; apply to new ones' }),
    'grace-period': gracePeriodFlag,
  };

  public async run(): Promise<ReloadJson> {
    const { flags } = await this.parse(ModuleReload);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<ReloadJson>(
      withWait(flags, flags['grace-period']),
      address,
      'Reload',
      compact({
        instanceId: flags.instance,
        graceful: flags.graceful || undefined,
        timeoutSeconds: toSeconds(flags['grace-period']),
      }),
    );
    if (!this.jsonEnabled()) this.out(res.message ?? 'reloaded');
    return res;
  }
}
