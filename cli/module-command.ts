/**
 * What the `mpctl module …` and blue/green commands share: the flags that pick a controller,
 * finding it (inferring --module from --version when it is omitted), requests without unset
 * fields, and the human rendering of a deployment (versions with weight bars, phase, step).
 */
import { Flags } from '@oclif/core';
import { durationFlag, type ConnectionFlags } from './base-command.js';
import { enumLabel, renderKeyValues, renderTable, type Cell } from './output.js';
import {
  inferModuleType,
  moduleFlags,
  moduleTypeEnum,
  pickTypeController,
  RpcCommand,
} from './rpc-command.js';

/** Flags that pick a controller: --module, --version, --address. */
export const controllerFlags = {
  module: moduleFlags.module,
  version: moduleFlags.version,
  address: moduleFlags.address,
};

/** --instance for RPCs that act on one instance or, without it, on the whole controller. */
export const instanceFlag = Flags.string({
  description: 'Act on this instance only, e.g. alb-1 (default: the whole controller)',
});

/** --instance for blue/green verbs, which act on the whole module type. */
export const viaInstanceFlag = Flags.string({
  description: "Send the request through this instance's controller, e.g. alb-1",
});

/** --grace-period: how long the controller waits for open connections (timeout_seconds). */
export const gracePeriodFlag = durationFlag({
  description: 'Wait at most this long for open connections, e.g. 30s [default: 30s]',
});

/** The values of the controller-picking flags. */
export interface ControllerFlagValues {
  module?: string;
  version?: string;
  address?: string;
  instance?: string;
}

/** `ms` as whole seconds for a timeout_seconds field (rounded up; undefined stays undefined). */
export function toSeconds(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.ceil(ms / 1000);
}

/**
 * The connection flags with a unary deadline long enough for a call that waits `waitMs` on the
 * server (drain, graceful shutdown), so --timeout's 10 s default does not cut it short.
 */
export function withWait<F extends ConnectionFlags>(flags: F, waitMs: number | undefined): F {
  const needed = (waitMs ?? 30_000) + 5_000;
  return flags.timeout >= needed ? flags : { ...flags, timeout: needed };
}

/** `request` without its undefined fields (protobuf JSON leaves unset fields out). */
export function compact<T extends Record<string, unknown>>(request: T): Partial<T> {
  return Object.fromEntries(Object.entries(request).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export abstract class ModuleCommand extends RpcCommand {
  /**
   * The controller a module command talks to: --address, else the registry lookup of
   * resolveModuleAddress; when --module is omitted it is the only type that has --version
   * registered (or the only type registered).
   */
  protected async moduleAddress(flags: ConnectionFlags, selector: ControllerFlagValues): Promise<string> {
    if (selector.address) return selector.address;
    let module = selector.module;
    if (!module && !selector.instance) {
      module = inferModuleType(await this.listAllInstances(flags), selector.version, flags.nlb);
    }
    return this.resolveModuleAddress(flags, { ...selector, module });
  }

  /**
   * A controller for a blue/green verb, which acts on the whole module type through the NLB:
   * --address or --instance when given, else a controller of the type (inferred from
   * `version` when --module is omitted), `version`'s own when it has one.
   */
  protected async deploymentAddress(
    flags: ConnectionFlags,
    selector: Omit<ControllerFlagValues, 'version'>,
    version: string | undefined,
  ): Promise<string> {
    if (selector.address) return selector.address;
    if (selector.instance) return this.resolveModuleAddress(flags, selector);
    const all = await this.listAllInstances(flags);
    const module = selector.module ?? inferModuleType(all, version, flags.nlb);
    const ofType = all.filter((i) => i.moduleType === moduleTypeEnum(module));
    return pickTypeController(ofType, version, module.toUpperCase(), flags.nlb);
  }
}

/** "http" or "PROTOCOL_HTTP" → "PROTOCOL_HTTP" (how protobuf JSON names the enum value). */
export function protocolEnum(name: string): string {
  const upper = name.trim().toUpperCase();
  return upper.startsWith('PROTOCOL_') ? upper : `PROTOCOL_${upper}`;
}

/** A DeploymentState in protobuf JSON (unset fields are absent). */
export interface DeploymentJson {
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
  revision?: number | string;
}

const BAR_WIDTH = 20;

/** A weight (0-100) as a bar of BAR_WIDTH cells: "█████░░░…". */
export function weightBar(weight: number, width = BAR_WIDTH): string {
  const filled = Math.round((Math.min(100, Math.max(0, weight)) / 100) * width);
  return '█'.repeat(filled) + '░'.repeat(width - filled);
}

/** "2/4 (25 %)" while a rollout walks its steps; undefined otherwise. */
export function stepLabel(d: DeploymentJson): string | undefined {
  const steps = d.steps ?? [];
  const phase = enumLabel(d.phase);
  if (steps.length === 0 || (phase !== 'PROGRESSING' && phase !== 'PAUSED')) return undefined;
  const i = Math.min(d.stepIndex ?? 0, steps.length - 1);
  return `${i + 1}/${steps.length} (${steps[i]} %; steps ${steps.join(', ')})`;
}

/**
 * A deployment for people: module, phase, step, stable and target versions, then one line per
 * version with its weight as a bar, highest version last.
 */
export function renderDeployment(d: DeploymentJson | undefined, options: { color?: boolean } = {}): string {
  if (!d) return 'no deployment';
  const header = renderKeyValues([
    ['Module', enumLabel(d.moduleType)],
    ['Phase', enumLabel(d.phase) || 'UNSPECIFIED'],
    ['Step', stepLabel(d)],
    ['Stable', d.stableVersion ?? ''],
    ['Target', d.targetVersion ?? ''],
    ['Reason', d.reason ?? ''],
    ['Updated', d.updatedAt ?? ''],
    ['Revision', d.revision ?? 0],
  ]);
  const rows = Object.entries(d.versionWeights ?? {})
    .map(([version, weight]) => ({ version, weight }))
    .sort((a, b) => a.version.localeCompare(b.version, undefined, { numeric: true }));
  const role = (version: string): Cell =>
    [version === d.stableVersion ? 'stable' : '', version === d.targetVersion ? 'target' : '']
      .filter(Boolean)
      .join(', ');
  const table = renderTable(
    rows,
    [
      { header: 'VERSION', key: 'version' },
      { header: 'WEIGHT', get: (r) => weightBar(r.weight), maxWidth: 0 },
      { header: '%', get: (r) => r.weight, align: 'right' },
      { header: 'ROLE', get: (r) => role(r.version) },
    ],
    options,
  );
  return `${header}\n\n${table}`;
}
