import { Flags } from '@oclif/core';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../../module-command.js';
import { renderTable } from '../../../output.js';

interface RateLimitJson {
  limitId?: string;
  target?: string;
  requestsPerSecond?: number;
  requestsPerMinute?: number;
  requestsPerHour?: number;
  burstSize?: number;
  enabled?: boolean;
}

interface GetRateLimitsJson {
  limits?: RateLimitJson[];
  totalLimits?: number;
}

export default class ModuleRatelimitsList extends ModuleCommand {
  static override summary = "List a module controller's rate limits";
  static override description =
    'One line per limit: its target (a client address, route or * for all), requests per second, minute and hour (- for no limit), burst size and whether it is enforced.';

  static rpc = 'marchproxy.ModuleService/GetRateLimits';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --target 10.0.0.7 --json',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    target: Flags.string({ description: 'Only limits for this target' }),
  };

  public async run(): Promise<GetRateLimitsJson> {
    const { flags } = await this.parse(ModuleRatelimitsList);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<GetRateLimitsJson>(
      flags,
      address,
      'GetRateLimits',
      compact({ instanceId: flags.instance, target: flags.target }),
    );
    if (!this.jsonEnabled()) {
      this.out(
        renderTable(res.limits ?? [], [
          { header: 'ID', key: 'limitId' },
          { header: 'TARGET', get: (l) => l.target || '*' },
          { header: 'PER SECOND', key: 'requestsPerSecond', align: 'right' },
          { header: 'PER MINUTE', key: 'requestsPerMinute', align: 'right' },
          { header: 'PER HOUR', key: 'requestsPerHour', align: 'right' },
          { header: 'BURST', key: 'burstSize', align: 'right' },
          { header: 'ENABLED', get: (l) => (l.enabled ? 'yes' : 'no') },
        ]),
      );
    }
    return { limits: res.limits ?? [], totalLimits: res.totalLimits ?? 0 };
  }
}
