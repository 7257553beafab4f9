import { Args } from '@oclif/core';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../../module-command.js';

interface DeleteRouteJson {
  success?: boolean;
  message?: string;
}

export default class ModuleRoutesDelete extends ModuleCommand {
  static override summary = 'Delete one route from a module controller and from the NLB';
  static override description = 'An unknown route id exits 3.';

  static rpc = 'marchproxy.ModuleService/DeleteRoute';

  static override examples = ['<%= config.bin %> <%= command.id %> web --module alb'];

  static override args = { id: Args.string({ description: 'Route id', required: true }) };

  static override flags = { ...controllerFlags, instance: instanceFlag };

  public async run(): Promise<DeleteRouteJson> {
    const { args, flags } = await this.parse(ModuleRoutesDelete);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<DeleteRouteJson>(
      flags,
      address,
      'DeleteRoute',
      compact({ instanceId: flags.instance, routeId: args.id }),
    );
    if (!this.jsonEnabled()) this.out(res.message ?? `route ${args.id} deleted`);
    return res;
  }
}
