import { Flags } from '@oclif/core';
import {
  ModuleCommand,
  compact,
  controllerFlags,
  viaInstanceFlag,
  renderDeployment,
  type DeploymentJson,
} from '../module-command.js';

interface PromoteVersionJson {
  success?: boolean;
  message?: string;
  promotedVersion?: string;
  deployment?: DeploymentJson;
}

export default class Promote extends ModuleCommand {
  static override summary = "Start rolling a version out to all of its module type's traffic";
  static override description =
    'The NLB moves traffic to --version in steps (5, 25, 50, 100 % by default; --rate 25 gives 25, 50, 75, 100), checking its success rate and latency against the stable version before each step, and rolls back on its own when they are worse. --immediate moves all traffic at once. When --module is omitted the module type that runs --version is used. Follow the rollout with `mpctl rollout status -w`.';

  static rpc = 'marchproxy.ModuleService/PromoteVersion';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --version 2.0',
    '<%= config.bin %> <%= command.id %> --module alb --version 2.0 --rate 25',
    '<%= config.bin %> <%= command.id %> --version 2.0 --immediate',
  ];

  static override flags = {
    ...controllerFlags,
    version: Flags.string({ description: 'The version to promote, e.g. 2.0', required: true }),
    instance: viaInstanceFlag,
    rate: Flags.integer({ description: 'Percentage points per step (1-100)', min: 1, max: 100 }),
    immediate: Flags.boolean({ description: 'Move all traffic to the version at once', exclusive: ['rate'] }),
  };

  public async run(): Promise<PromoteVersionJson> {
    const { flags } = await this.parse(Promote);
    const address = await this.deploymentAddress(flags, flags, flags.version);
    const res = await this.callModule<PromoteVersionJson>(
      flags,
      address,
      'PromoteVersion',
      compact({
        instanceId: flags.instance,
        version: flags.version,
        promotionRate: flags.rate,
        immediate: flags.immediate || undefined,
      }),
    );
    if (!this.jsonEnabled()) {
      this.out(res.message ?? `promoting ${flags.version}`);
      this.out('');
      this.out(renderDeployment(res.deployment, { color: this.color(flags) }));
    }
    return res;
  }
}
