import { Flags } from '@oclif/core';
import { usageFailure } from '../../exit-codes.js';
import { nonNegativeIntFlag, typeFlag } from '../../nlb-support.js';
import { enumLabel, renderKeyValues, renderTable } from '../../output.js';
import { moduleTypeEnum, RpcCommand } from '../../rpc-command.js';

/** A DeploymentState in protobuf JSON. */
export interface DeploymentStateJson {
  moduleType?: string;
  versionWeights?: Record<string, number>;
  stableVersion?: string;
  targetVersion?: string;
  phase?: string;
  stepIndex?: number;
  steps?: number[];
  stepStartedAt?: string;
  reason?: string;
  updatedAt?: string;
  revision?: number;
  [key: string]: unknown;
}

/** UpdateDeploymentResponse in protobuf JSON. */
interface UpdateDeploymentJson {
  success?: boolean;
  message?: string;
  deployment?: DeploymentStateJson;
}

const ACTIONS = ['status', 'set-weight', 'promote', 'rollback', 'pause', 'resume'] as const;

/** Human form of a deployment: key: value lines and a VERSION WEIGHT table. */
export function renderDeployment(d: DeploymentStateJson, message?: string): string {
  const steps = d.steps ?? [];
  const weights = Object.entries(d.versionWeights ?? {})
    .map(([version, weight]) => ({ version, weight }))
    .sort((a, b) => a.version.localeCompare(b.version));
  const lines = [
    renderKeyValues([
      ['result', message],
      ['module', enumLabel(d.moduleType, 'MODULE_TYPE_')],
      ['phase', enumLabel(d.phase, 'ROLLOUT_PHASE_')],
      ['stable version', d.stableVersion],
      ['target version', d.targetVersion],
      [
        'step',
        steps.length ? `${(d.stepIndex ?? 0) + 1} of ${steps.length} (${steps.join(', ')})` : undefined,
      ],
      ['reason', d.reason],
      ['revision', d.revision ?? 0],
    ]),
  ];
  if (weights.length) {
    lines.push(
      '',
      renderTable(weights, [
        { header: 'VERSION', key: 'version' },
        { header: 'WEIGHT', key: 'weight' },
      ]),
    );
  }
  return lines.join('\n');
}

export default class DeploymentUpdate extends RpcCommand {
  static rpc = 'marchproxy.NLBService/UpdateDeployment';
  static override summary = "Read or change a module type's deployment: version weights and the rollout";
  static override description = `Actions: status (read only), set-weight (--version --weight 0-100; the other versions share the rest), promote (start a rollout of --version: default steps 5, 25, 50, 100; --rate N points per step; --immediate for 100 at once), rollback (to the stable version, or --version), pause, resume. --dry-run validates and shows the resulting state without applying it.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %> --type alb --action status',
    '<%= config.bin %> <%= command.id %> --type alb --action set-weight --version 2.0 --weight 10',
    '<%= config.bin %> <%= command.id %> --type alb --action promote --version 2.0 --rate 25',
    '<%= config.bin %> <%= command.id %> --type alb --action rollback',
  ];

  static override flags = {
    type: typeFlag({ description: 'Module type', required: true }),
    action: Flags.string({ description: 'What to do', options: [...ACTIONS], required: true }),
    version: Flags.string({ description: 'Version acted on (set-weight, promote; optional for rollback)' }),
    weight: nonNegativeIntFlag({ description: 'set-weight: 0-100' }),
    rate: nonNegativeIntFlag({ description: 'promote: percentage points per step, 1-100' }),
    immediate: Flags.boolean({ description: 'promote: go to 100 at once' }),
    reason: Flags.string({ description: 'Free text stored with the change' }),
    'dry-run': Flags.boolean({ description: 'Validate and show the result without applying it' }),
  };

  public async run(): Promise<UpdateDeploymentJson> {
    const { flags } = await this.parse(DeploymentUpdate);
    const { action } = flags;
    if ((action === 'set-weight' || action === 'promote') && !flags.version) {
      throw usageFailure(`--action ${action} needs --version`);
    }
    if (action === 'set-weight' && flags.weight === undefined)
      throw usageFailure('--action set-weight needs --weight 0-100');
    if (flags.weight !== undefined && (action !== 'set-weight' || flags.weight > 100)) {
      throw usageFailure(
        action !== 'set-weight'
          ? '--weight goes with --action set-weight'
          : `--weight: 0-100, got ${flags.weight}`,
      );
    }
    if (flags.rate !== undefined && (action !== 'promote' || flags.rate < 1 || flags.rate > 100)) {
      throw usageFailure(
        action !== 'promote' ? '--rate goes with --action promote' : `--rate: 1-100, got ${flags.rate}`,
      );
    }
    if (flags.immediate && action !== 'promote') throw usageFailure('--immediate goes with --action promote');
    const res = await this.callNlb<UpdateDeploymentJson>(flags, 'UpdateDeployment', {
      moduleType: moduleTypeEnum(flags.type),
      action: `DEPLOYMENT_ACTION_${action.toUpperCase().replace('-', '_')}`,
      version: flags.version ?? '',
      weight: flags.weight ?? 0,
      promotionRate: flags.rate ?? 0,
      immediate: flags.immediate,
      validateOnly: flags['dry-run'],
      requestedBy: 'mpctl',
      reason: flags.reason ?? '',
    });
    if (!this.jsonEnabled()) this.out(renderDeployment(res.deployment ?? {}, res.message));
    return res;
  }
}
