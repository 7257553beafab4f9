import { Flags } from '@oclif/core';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../module-command.js';
import { enumLabel, renderKeyValues, renderTable } from '../../output.js';

interface HealthCheckJson {
  status?: string;
  message?: string;
  checks?: Record<string, string>;
  checkedAt?: string;
}

export default class ModuleHealth extends ModuleCommand {
  static override summary = 'Check a module controller, its instances and (with --deep) their backends';
  static override description =
    'Each instance is asked for its state and lease; --deep also checks that the configured backends answer. The overall status is HEALTHY when every check passes, DEGRADED when some fail and UNHEALTHY when every instance does. The command exits 0 whatever the status: read it from the output (or .status with --json).';

  static rpc = 'marchproxy.ModuleService/HealthCheck';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --instance alb-1 --deep --json',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    deep: Flags.boolean({ description: 'Also check that backends are reachable' }),
  };

  public async run(): Promise<HealthCheckJson> {
    const { flags } = await this.parse(ModuleHealth);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<HealthCheckJson>(
      flags,
      address,
      'HealthCheck',
      compact({ instanceId: flags.instance, deepCheck: flags.deep || undefined }),
    );
    if (!this.jsonEnabled()) {
      const color = this.color(flags);
      const checks = Object.entries(res.checks ?? {})
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([check, result]) => ({ check, result }));
      this.out(
        renderKeyValues(
          [
            ['Status', enumLabel(res.status) || 'UNSPECIFIED'],
            ['Message', res.message ?? ''],
            ['Checked', res.checkedAt ?? ''],
          ],
          { color, status: ['Status'] },
        ),
      );
      if (checks.length > 0) {
        this.out('');
        this.out(
          renderTable(checks, [
            { header: 'CHECK', key: 'check' },
            { header: 'RESULT', key: 'result', maxWidth: 100 },
          ]),
        );
      }
    }
    return res;
  }
}
