import { Args, Flags } from '@oclif/core';
import { usageFailure } from '../../../exit-codes.js';
import { asObject, readStructuredFile } from '../../../file-input.js';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../../module-command.js';

interface SetRateLimitJson {
  success?: boolean;
  message?: string;
}

const rate = (description: string) => Flags.integer({ description, min: 0 });

export default class ModuleRatelimitsSet extends ModuleCommand {
  static override summary = 'Create or replace a rate limit; instances enforce it at once';
  static override description =
    'Give the limit with flags, or as a RateLimit mapping in YAML or JSON with -f (limit_id, target, requests_per_second, requests_per_minute, requests_per_hour, burst_size, enabled); flags override the file. A limit is enabled unless --disable.';

  static rpc = 'marchproxy.ModuleService/SetRateLimit';

  static override examples = [
    '<%= config.bin %> <%= command.id %> per-client --module alb --target 10.0.0.7 --rps 100 --burst 20',
    '<%= config.bin %> <%= command.id %> --module alb -f limit.yaml',
  ];

  static override args = {
    id: Args.string({ description: 'Limit id (or limit_id in the file)' }),
  };

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    target: Flags.string({
      description: 'What the limit applies to: a client address, a route id, or * (all)',
    }),
    rps: rate('Requests per second (0: no per-second limit)'),
    rpm: rate('Requests per minute (0: no per-minute limit)'),
    rph: rate('Requests per hour (0: no per-hour limit)'),
    burst: rate('Burst size: requests allowed above the rate at once'),
    disable: Flags.boolean({ description: 'Store the limit without enforcing it' }),
    file: Flags.string({ char: 'f', description: 'The limit as YAML or JSON (- reads stdin)' }),
  };

  public async run(): Promise<SetRateLimitJson> {
    const { args, flags } = await this.parse(ModuleRatelimitsSet);
    const source = flags.file ? `--file ${flags.file}` : 'the limit';
    const fromFile = flags.file ? asObject(await readStructuredFile(flags.file), source) : {};
    const limit: Record<string, unknown> = {
      enabled: true,
      ...fromFile,
      ...compact({
        limitId: args.id,
        target: flags.target,
        requestsPerSecond: flags.rps,
        requestsPerMinute: flags.rpm,
        requestsPerHour: flags.rph,
        burstSize: flags.burst,
        enabled: flags.disable ? false : undefined,
      }),
    };
    if (!limit.limitId && !limit.limit_id) {
      throw usageFailure('missing the limit id: pass it as the argument or as limit_id in --file');
    }
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<SetRateLimitJson>(
      flags,
      address,
      'SetRateLimit',
      compact({ instanceId: flags.instance, limit }),
      source,
    );
    if (!this.jsonEnabled()) this.out(res.message ?? 'rate limit set');
    return res;
  }
}
