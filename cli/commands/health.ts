import { Flags } from '@oclif/core';
import { enumLabel, renderKeyValues, renderTable } from '../output.js';
import { RpcCommand } from '../rpc-command.js';

/** CheckHealthResponse in protobuf JSON. */
interface CheckHealthJson {
  status?: string;
  message?: string;
  moduleHealth?: Record<string, string>;
  checks?: Record<string, string>;
  checkedAt?: string;
}

export default class Health extends RpcCommand {
  static rpc = 'marchproxy.NLBService/CheckHealth';
  static override summary = "Run the NLB's health checks (and, with --modules, every module's HealthCheck)";
  static override description =
    'Prints the aggregate status (HEALTHY, DEGRADED or UNHEALTHY), each self check and, with --modules, each instance’s health as its controller reports it. --deep runs the slower checks too.';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --deep --modules',
  ];

  static override flags = {
    deep: Flags.boolean({ description: 'Run the deep checks as well' }),
    modules: Flags.boolean({ description: "Ask every module controller for its instances' health" }),
  };

  public async run(): Promise<CheckHealthJson> {
    const { flags } = await this.parse(Health);
    const res = await this.callNlb<CheckHealthJson>(flags, 'CheckHealth', {
      deepCheck: flags.deep,
      checkModules: flags.modules,
    });
    if (!this.jsonEnabled()) {
      const color = this.color(flags);
      const lines = [
        renderKeyValues(
          [
            ['status', enumLabel(res.status, 'HEALTH_STATUS_')],
            ['message', res.message],
            ['checked at', res.checkedAt],
          ],
          { color, status: ['status'] },
        ),
      ];
      const checks = Object.entries(res.checks ?? {}).map(([check, result]) => ({ check, result }));
      if (checks.length) {
        lines.push(
          '',
          renderTable(checks, [
            { header: 'CHECK', key: 'check' },
            { header: 'RESULT', key: 'result', maxWidth: 80 },
          ]),
        );
      }
      const modules = Object.entries(res.moduleHealth ?? {}).map(([instance, status]) => ({
        instance,
        status: enumLabel(status, 'HEALTH_STATUS_'),
      }));
      if (flags.modules) {
        lines.push(
          '',
          modules.length
            ? renderTable(
                modules,
                [
                  { header: 'INSTANCE', key: 'instance' },
                  { header: 'STATUS', key: 'status', status: true },
                ],
                { color },
              )
            : 'no module instances are registered',
        );
      }
      this.out(lines.join('\n'));
    }
    return res;
  }
}
