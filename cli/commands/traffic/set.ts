import { Flags } from '@oclif/core';
import { parseNonNegativeInt } from '../../flag-parsers.js';
import {
  ModuleCommand,
  compact,
  controllerFlags,
  viaInstanceFlag,
  renderDeployment,
  type DeploymentJson,
} from '../../module-command.js';

interface SetTrafficWeightJson {
  success?: boolean;
  message?: string;
  deployment?: DeploymentJson;
}

export default class TrafficSet extends ModuleCommand {
  static override summary = "Set a version's share of its module type's traffic";
  static override description =
    '--weight is a percentage (0-100); the other versions share the rest in proportion to their current weights. Setting a weight by hand pauses any rollout of that module type. When --module is omitted the module type that runs --version is used.';

  static rpc = 'marchproxy.ModuleService/SetTrafficWeight';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --version 2.0 --weight 5',
    '<%= config.bin %> <%= command.id %> --module alb --version 1.0 --weight 100',
  ];

  static override flags = {
    ...controllerFlags,
    version: Flags.string({ description: 'The version whose weight to set, e.g. 2.0', required: true }),
    weight: Flags.custom<number>({ parse: (input) => Promise.resolve(parseNonNegativeInt(input)) })({
      description: 'Its share of the traffic, 0-100 (%)',
      required: true,
    }),
    instance: viaInstanceFlag,
  };

  public async run(): Promise<SetTrafficWeightJson> {
    const { flags } = await this.parse(TrafficSet);
    const address = await this.deploymentAddress(flags, flags, flags.version);
    const res = await this.callModule<SetTrafficWeightJson>(
      flags,
      address,
      'SetTrafficWeight',
      compact({ instanceId: flags.instance, version: flags.version, weight: flags.weight }),
    );
    if (!this.jsonEnabled()) {
      this.out(res.message ?? `${flags.version} set to ${flags.weight} %`);
      this.out('');
      this.out(renderDeployment(res.deployment, { color: this.color(flags) }));
    }
    return res;
  }
}
