import {
  ModuleCommand,
  compact,
  controllerFlags,
  gracePeriodFlag,
  toSeconds,
  withWait,
} from '../../module-command.js';
import { Flags } from '@oclif/core';

interface DrainJson {
  success?: boolean;
  message?: string;
  connectionsRemaining?: number;
  instancesDrained?: number;
}

export default class ModuleDrain extends ModuleCommand {
  static override summary = 'Stop new connections to one instance (or all) and wait for open ones to finish';
  static override description =
    'Draining instances take no new connections; the command returns when their open connections have closed or --grace-period has passed, and says how many are still open. Drained instances stay drained until they are replaced or the controller scales.';

  static rpc = 'marchproxy.ModuleService/Drain';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb --instance alb-1',
    '<%= config.bin %> <%= command.id %> --module alb --version 1.0 --grace-period 2m',
  ];

  static override flags = {
    ...controllerFlags,
    instance: Flags.string({ description: 'Drain only this instance, e.g. alb-1 (default: every instance)' }),
    'grace-period': gracePeriodFlag,
  };

  public async run(): Promise<DrainJson> {
    const { flags } = await this.parse(ModuleDrain);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<DrainJson>(
      withWait(flags, flags['grace-period']),
      address,
      'Drain',
      compact({ instanceId: flags.instance, timeoutSeconds: toSeconds(flags['grace-period']) }),
    );
    if (!this.jsonEnabled()) this.out(res.message ?? 'drained');
    return res;
  }
}
