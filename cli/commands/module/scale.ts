import { Flags } from '@oclif/core';
import type { ConnectionFlags } from '../../base-command.js';
import { usageFailure } from '../../exit-codes.js';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../module-command.js';
import { renderKeyValues } from '../../output.js';

interface ScaleJson {
  success?: boolean;
  message?: string;
  currentInstances?: number;
  desiredInstances?: number;
}

interface ConfigJson {
  configs?: Array<{ configType?: string; configData?: string }>;
}

export default class ModuleScale extends ModuleCommand {
  static override summary = "Change a module controller's instance count and bounds";
  static override description =
    '--instances sets the desired count (within --min/--max); --instances 0 stops every instance and sets both bounds to 0 (raise --max to scale up again). --min, --max and --autoscale change the bounds the autoscaler keeps to; the other scaling settings stay as they are. --immediate waits until the instances have started or stopped.';

  static rpc = 'marchproxy.ModuleService/Scale';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb --instances 3',
    '<%= config.bin %> <%= command.id %> --module alb --version 2.0 --min 2 --max 8 --autoscale',
    '<%= config.bin %> <%= command.id %> --module alb --instances 4 --max 4 --immediate',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    instances: Flags.integer({ description: 'Desired instance count', min: 0, max: 1000 }),
    min: Flags.integer({ description: 'Fewest instances the autoscaler keeps', min: 0, max: 1000 }),
    max: Flags.integer({ description: 'Most instances the autoscaler starts', min: 0, max: 1000 }),
    autoscale: Flags.boolean({ description: 'Let the NLB autoscale between --min and --max', allowNo: true }),
    immediate: Flags.boolean({ description: 'Start or stop instances now and wait for them' }),
  };

  public async run(): Promise<ScaleJson> {
    const { flags } = await this.parse(ModuleScale);
    const changesBounds = flags.min !== undefined || flags.max !== undefined || flags.autoscale !== undefined;
    if (flags.instances === undefined && !changesBounds) {
      throw usageFailure('nothing to change: pass --instances, --min, --max or --autoscale');
    }
    const address = await this.moduleAddress(flags, flags);
    let config: Record<string, unknown> | undefined;
    if (flags.instances === 0) {
      config = { ...(await this.scaling(flags, address)), minInstances: 0, maxInstances: 0 };
      config.autoScalingEnabled = false;
    } else if (changesBounds) {
      config = {
        ...(await this.scaling(flags, address)),
        ...compact({ minInstances: flags.min, maxInstances: flags.max, autoScalingEnabled: flags.autoscale }),
      };
    }
    const res = await this.callModule<ScaleJson>(
      flags,
      address,
      'Scale',
      compact({
        instanceId: flags.instance,
        desiredInstances: flags.instances || undefined,
        config,
        immediate: flags.immediate || undefined,
      }),
    );
    if (!this.jsonEnabled()) {
      this.out(
        renderKeyValues([
          ['Message', res.message ?? ''],
          ['Desired', res.desiredInstances ?? 0],
          ['Running', res.currentInstances ?? 0],
        ]),
      );
    }
    return res;
  }

  /** The controller's current scaling bounds (GetConfig "scaling"), so unchanged ones are kept. */
  private async scaling(flags: ConnectionFlags, address: string): Promise<Record<string, unknown>> {
    const res = await this.callModule<ConfigJson>(flags, address, 'GetConfig', { configType: 'scaling' });
    const data = res.configs?.[0]?.configData;
    if (!data) return {};
    const parsed = JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as Record<string, unknown>;
    const known = [
      'minInstances',
      'maxInstances',
      'targetCpuPercent',
      'targetMemoryPercent',
      'targetConnections',
      'cooldownSeconds',
      'autoScalingEnabled',
    ];
    return Object.fromEntries(Object.entries(parsed).filter(([k]) => known.includes(k)));
  }
}
