import { Flags } from '@oclif/core';
import { usageFailure } from '../exit-codes.js';
import { nonNegativeIntFlag, typeFlag } from '../nlb-support.js';
import { renderKeyValues } from '../output.js';
import { moduleTypeEnum, RpcCommand } from '../rpc-command.js';

/** TriggerScalingResponse in protobuf JSON. */
interface ScalingJson {
  success?: boolean;
  message?: string;
  currentInstances?: number;
  targetInstances?: number;
  scalingAction?: string;
}

export default class Scale extends RpcCommand {
  static rpc = 'marchproxy.NLBService/TriggerScaling';
  static override summary = 'Scale a module controller by hand, or run the autoscaler now';
  static override description =
    'Name what to scale with --type (the controller of the active version; it must be the only one) or --instance (that instance’s controller). --action scale-up/scale-down moves one instance, or to --to N; --to N alone scales to exactly N; --action auto runs the autoscaler now.';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --type alb --action scale-up',
    '<%= config.bin %> <%= command.id %> --type alb --to 3',
    '<%= config.bin %> <%= command.id %> --instance alb-1 --action scale-down',
    '<%= config.bin %> <%= command.id %> --type alb --action auto',
  ];

  static override flags = {
    type: typeFlag({ description: 'Scale the controller of this module type' }),
    instance: Flags.string({ description: "Scale this instance's controller" }),
    action: Flags.string({ description: 'What to do', options: ['scale-up', 'scale-down', 'auto'] }),
    to: nonNegativeIntFlag({ description: 'Target number of instances, 0-10000' }),
  };

  public async run(): Promise<ScalingJson> {
    const { flags } = await this.parse(Scale);
    if (!flags.type && !flags.instance)
      throw usageFailure('say what to scale: --type alb|dblb|ailb|rtmp or --instance <id>');
    if (!flags.action && flags.to === undefined)
      throw usageFailure('say how: --action scale-up|scale-down|auto, or --to N');
    if (flags.to !== undefined && flags.to > 10_000)
      throw usageFailure(`--to: at most 10000, got ${flags.to}`);
    if (flags.action === 'auto' && flags.to !== undefined)
      throw usageFailure('--to does not go with --action auto');
    const res = await this.callNlb<ScalingJson>(flags, 'TriggerScaling', {
      instanceId: flags.instance ?? '',
      moduleType: flags.type ? moduleTypeEnum(flags.type) : 'MODULE_TYPE_UNSPECIFIED',
      scalingAction: flags.action ?? '',
      targetInstances: flags.to ?? 0,
    });
    if (!this.jsonEnabled()) {
      this.out(
        renderKeyValues([
          ['result', res.message],
          ['action', res.scalingAction],
          ['instances', `${res.currentInstances ?? 0} -> ${res.targetInstances ?? 0}`],
        ]),
      );
    }
    return res;
  }
}
