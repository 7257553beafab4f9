import { Flags } from '@oclif/core';
import {
  ModuleCommand,
  compact,
  controllerFlags,
  viaInstanceFlag,
  renderDeployment,
  type DeploymentJson,
} from '../../module-command.js';

interface PauseRolloutJson {
  success?: boolean;
  message?: string;
  deployment?: DeploymentJson;
}

export default class RolloutPause extends ModuleCommand {
  static override summary = "Hold a module type's rollout at its current step";
  static override description =
    'The rollout stays at its current weights until `mpctl rollout resume`; the NLB stops judging and advancing it. --version only pauses when that version is the one rolling out. When --module is omitted the module type that runs --version (or the only type registered) is used.';

  static rpc = 'marchproxy.ModuleService/PauseRollout';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --version 2.0',
    "<%= config.bin %> <%= command.id %> --module alb --reason 'checking the error budget'",
  ];

  static override flags = {
    ...controllerFlags,
    version: Flags.string({ description: 'Only when this version is the one rolling out, e.g. 2.0' }),
    reason: Flags.string({ description: 'Why, kept with the deployment for the audit trail' }),
    instance: viaInstanceFlag,
  };

  public async run(): Promise<PauseRolloutJson> {
    const { flags } = await this.parse(RolloutPause);
    const address = await this.deploymentAddress(flags, flags, flags.version);
    const res = await this.callModule<PauseRolloutJson>(
      flags,
      address,
      'PauseRollout',
      compact({ instanceId: flags.instance, version: flags.version, reason: flags.reason }),
    );
    if (!this.jsonEnabled()) {
      this.out(res.message ?? 'paused');
      this.out('');
      this.out(renderDeployment(res.deployment, { color: this.color(flags) }));
    }
    return res;
  }
}
