import { Flags } from '@oclif/core';
import {
  ModuleCommand,
  compact,
  controllerFlags,
  viaInstanceFlag,
  renderDeployment,
  type DeploymentJson,
} from '../../module-command.js';

interface ResumeRolloutJson {
  success?: boolean;
  message?: string;
  deployment?: DeploymentJson;
}

export default class RolloutResume extends ModuleCommand {
  static override summary = 'Continue a paused rollout of a module type';
  static override description =
    'The current step starts over: the NLB judges the new version for a full step interval before moving on. --version only resumes when that version is the one rolling out. When --module is omitted the module type that runs --version (or the only type registered) is used.';

  static rpc = 'marchproxy.ModuleService/ResumeRollout';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --version 2.0',
    "<%= config.bin %> <%= command.id %> --module alb --reason 'error budget ok'",
  ];

  static override flags = {
    ...controllerFlags,
    version: Flags.string({ description: 'Only when this version is the one rolling out, e.g. 2.0' }),
    reason: Flags.string({ description: 'Why, kept with the deployment for the audit trail' }),
    instance: viaInstanceFlag,
  };

  public async run(): Promise<ResumeRolloutJson> {
    const { flags } = await this.parse(RolloutResume);
    const address = await this.deploymentAddress(flags, flags, flags.version);
    const res = await this.callModule<ResumeRolloutJson>(
      flags,
      address,
      'ResumeRollout',
      compact({ instanceId: flags.instance, version: flags.version, reason: flags.reason }),
    );
    if (!this.jsonEnabled()) {
      this.out(res.message ?? 'resumed');
      this.out('');
      this.out(renderDeployment(res.deployment, { color: this.color(flags) }));
    }
    return res;
  }
}
