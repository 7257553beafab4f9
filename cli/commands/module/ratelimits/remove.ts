import { Args } from '@oclif/core';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../../module-command.js';

interface RemoveRateLimitJson {
  success?: boolean;
  message?: string;
}

export default class ModuleRatelimitsRemove extends ModuleCommand {
  static override summary = 'Delete a rate limit';
  static override description = 'Instances stop enforcing it at once. An unknown limit id exits 3.';

  static rpc = 'marchproxy.ModuleService/RemoveRateLimit';

  static override examples = ['<%= config.bin %> <%= command.id %> per-client --module alb'];

  static override args = { id: Args.string({ description: 'Limit id', required: true }) };

  static override flags = { ...controllerFlags, instance: instanceFlag };

  public async run(): Promise<RemoveRateLimitJson> {
    const { args, flags } = await this.parse(ModuleRatelimitsRemove);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<RemoveRateLimitJson>(
      flags,
      address,
      'RemoveRateLimit',
      compact({ instanceId: flags.instance, limitId: args.id }),
    );
    if (!this.jsonEnabled()) this.out(res.message ?? `rate limit ${args.id} removed`);
    return res;
  }
}
