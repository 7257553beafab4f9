import { Args, Flags } from '@oclif/core';
import { CliFailure, ExitCode } from '../../exit-codes.js';
import { asObject, fileFlag, readStructuredFile } from '../../file-input.js';
import { formatMap, renderKeyValues } from '../../output.js';
import { RpcCommand } from '../../rpc-command.js';

/** HeartbeatResponse in protobuf JSON. */
interface HeartbeatJson {
  acknowledged?: boolean;
  message?: string;
  serverTime?: string;
  shouldReload?: boolean;
  shouldScale?: boolean;
  instructions?: Record<string, string>;
}

export default class ModulesHeartbeat extends RpcCommand {
  static rpc = 'marchproxy.NLBService/Heartbeat';
  static override summary = 'Send one heartbeat for an instance (renews its lease), and show the answer';
  static override description =
    'Modules heartbeat by themselves; this is for instances registered by hand and for checking what the NLB would tell an instance. -f gives the stats (a ModuleStats in YAML or JSON). An unacknowledged heartbeat (unknown instance or stale registration id) exits 3 with the NLB’s reason.';

  static override examples = [
    '<%= config.bin %> <%= command.id %> alb-1 --registration-id 3f2a… --status healthy',
    '<%= config.bin %> <%= command.id %> alb-1 -f stats.yaml',
  ];

  static override args = {
    instance: Args.string({ description: 'Instance id', required: true }),
  };

  static override flags = {
    'registration-id': Flags.string({ description: 'Registration id from register' }),
    status: Flags.string({
      description: 'Health the instance reports [default: healthy]',
      options: ['healthy', 'degraded', 'unhealthy', 'starting', 'stopping', 'stopped'],
      default: 'healthy',
    }),
    file: { ...fileFlag, description: 'Stats to send: a ModuleStats in YAML or JSON (- reads stdin)' },
  };

  public async run(): Promise<HeartbeatJson> {
    const { args, flags } = await this.parse(ModulesHeartbeat);
    const source = flags.file ? `--file ${flags.file}` : undefined;
    const stats = flags.file ? asObject(await readStructuredFile(flags.file), source!) : undefined;
    const res = await this.callNlb<HeartbeatJson>(
      flags,
      'Heartbeat',
      {
        instanceId: args.instance,
        registrationId: flags['registration-id'] ?? '',
        status: `HEALTH_STATUS_${flags.status.toUpperCase()}`,
        ...(stats ? { currentStats: { instanceId: args.instance, ...stats } } : {}),
        timestamp: new Date().toISOString(),
      },
      source,
    );
    if (!res.acknowledged) {
      throw new CliFailure(
        `the NLB did not acknowledge the heartbeat of ${args.instance}: ${res.message ?? 'no reason given'}`,
        ExitCode.notFound,
        'NOT_ACKNOWLEDGED',
        res,
      );
    }
    if (!this.jsonEnabled()) {
      this.out(
        renderKeyValues([
          ['acknowledged', 'yes'],
          ['message', res.message],
          ['server time', res.serverTime],
          ['should reload', res.shouldReload ? 'yes' : 'no'],
          ['should scale', res.shouldScale ? 'yes' : 'no'],
          ['instructions', formatMap(res.instructions)],
        ]),
      );
    }
    return res;
  }
}
