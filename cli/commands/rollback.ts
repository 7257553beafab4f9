import { Flags } from '@oclif/core';
import { ModuleCommand, compact, controllerFlags, viaInstanceFlag } from '../module-command.js';
import { renderKeyValues } from '../output.js';

interface RollbackJson {
  success?: boolean;
  message?: string;
  previousVersion?: string;
  currentVersion?: string;
}

export default class Rollback extends ModuleCommand {
  static override summary = "Return a module type's traffic to its last fully promoted version";
  static override description =
    'Stops any rollout and gives all traffic back to the stable version, or to --to. When --module is omitted the module type that runs --to (or the only type registered) is used.';

  static rpc = 'marchproxy.ModuleService/Rollback';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --module alb --to 1.0',
  ];

  static override flags = {
    module: controllerFlags.module,
    address: controllerFlags.address,
    to: Flags.string({ description: 'Version to return to (default: the last fully promoted one)' }),
    instance: viaInstanceFlag,
  };

  public async run(): Promise<RollbackJson> {
    const { flags } = await this.parse(Rollback);
    const address = await this.deploymentAddress(flags, flags, flags.to);
    const res = await this.callModule<RollbackJson>(
      flags,
      address,
      'Rollback',
      compact({ instanceId: flags.instance, targetVersion: flags.to }),
    );
    if (!this.jsonEnabled()) {
      this.out(
        renderKeyValues([
          ['Message', res.message ?? ''],
          ['Previous', res.previousVersion ?? ''],
          ['Current', res.currentVersion ?? ''],
        ]),
      );
    }
    return res;
  }
}
