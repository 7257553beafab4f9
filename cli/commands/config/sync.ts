import { Flags } from '@oclif/core';
import {
  toRouteSpec,
  toScalingOverrides,
  type ManagerDocument,
} from '../../../services/nlb/manager-sync/document.js';
import {
  DEFAULT_MANAGER_PATH,
  SyncFailure,
  fetchManagerDocument,
} from '../../../services/nlb/manager-sync/sync.js';
import { CliFailure, ExitCode } from '../../exit-codes.js';
import { withValidationErrors } from '../../nlb-support.js';
import { RpcCommand } from '../../rpc-command.js';

interface SyncJson {
  revision: string;
  dryRun: boolean;
  applied: { scalingPolicies: number; routes: number; deployments: number };
  warnings: string[];
}

export default class ConfigSync extends RpcCommand {
  static rpcs = [
    'marchproxy.NLBService/GetNLBConfig',
    'marchproxy.NLBService/UpdateNLBConfig',
    'marchproxy.NLBService/UpdateRouting',
    'marchproxy.NLBService/UpdateDeployment',
  ];
  static override summary = "Pull the Manager's configuration now and apply it to the NLB";
  static override description = `Fetches the Manager's document (GET <manager><path> with the API key as a bearer token), validates it, and applies its scaling policies (UpdateNLBConfig scaling), routes (UpdateRouting, operator routes with ids manager:<id>) and deployment weights (UpdateDeployment SET_WEIGHT) through the NLB's validated RPCs. Everything is validated first (validate_only): a document the NLB rejects changes nothing. Deployments of types or versions that have not registered yet are deferred with a warning. The document shape is in docs/deploying.md. The NLB can also sync on its own on an interval: MP_MANAGER_URL, MP_MANAGER_API_KEY, MP_MANAGER_SYNC_INTERVAL.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %> --manager https://manager.example:8000 --api-key $MP_MANAGER_API_KEY',
    '<%= config.bin %> <%= command.id %> --dry-run --json',
  ];

  static override flags = {
    manager: Flags.string({ description: 'Manager base URL', env: 'MP_MANAGER_URL', required: true }),
    'api-key': Flags.string({
      description: 'Manager API key (sent as a bearer token)',
      env: 'MP_MANAGER_API_KEY',
    }),
    path: Flags.string({ description: `Document path [default: ${DEFAULT_MANAGER_PATH}]` }),
    'manager-timeout': Flags.integer({
      description: 'Milliseconds to wait for the Manager',
      default: 5000,
      min: 100,
    }),
    'dry-run': Flags.boolean({ description: 'Only validate (validate_only); change nothing' }),
  };

  public async run(): Promise<SyncJson> {
    const { flags } = await this.parse(ConfigSync);
    let doc: ManagerDocument;
    try {
      doc = await fetchManagerDocument({
        url: flags.manager,
        apiKey: flags['api-key'],
        path: flags.path,
        timeoutMs: flags['manager-timeout'],
      });
    } catch (e) {
      if (!(e instanceof SyncFailure)) throw e;
      const exit =
        e.kind === 'unavailable'
          ? ExitCode.unavailable
          : e.kind === 'unauthenticated'
            ? ExitCode.auth
            : ExitCode.domain;
      throw new CliFailure([e.message, ...e.problems.slice(1)].join('; '), exit, e.kind.toUpperCase());
    }
    const out: SyncJson = {
      revision: doc.revision === undefined ? '' : String(doc.revision),
      dryRun: flags['dry-run'],
      applied: { scalingPolicies: 0, routes: 0, deployments: 0 },
      warnings: [],
    };

    // Build the requests.
    let scalingBody: Record<string, unknown> | undefined;
    if (doc.scalingPolicies) {
      const res = await this.callNlb<{ configs?: Array<{ configData?: string }> }>(flags, 'GetNLBConfig', {
        configType: 'scaling',
      });
      const current = JSON.parse(
        Buffer.from(res.configs?.[0]?.configData ?? '', 'base64').toString('utf8') || '{}',
      ) as Record<string, unknown>;
      scalingBody = {
        ...current,
        overrides: toScalingOverrides(doc, (current.defaults ?? {}) as Record<string, unknown>),
      };
    }
    const routes = doc.routes?.map((r) => {
      const s = toRouteSpec(r);
      return { ...s, protocol: s.protocol ? `PROTOCOL_${s.protocol}` : 'PROTOCOL_UNSPECIFIED' };
    });
    const steps: Array<{ type: string; version: string; weight: number }> = [];
    for (const d of doc.deployments ?? []) {
      const order = Object.entries(d.weights).sort((a, b) => a[1] - b[1]);
      for (const [version, weight] of order.slice(0, Math.max(1, order.length - 1)))
        steps.push({ type: d.module, version, weight });
    }
    const scalingReq = (validateOnly: boolean) => ({
      config: {
        configId: 'scaling',
        configType: 'scaling',
        configData: Buffer.from(JSON.stringify(scalingBody)).toString('base64'),
      },
      validateOnly,
    });
    const deploy = (s: (typeof steps)[number], validateOnly: boolean) =>
      this.callNlb(flags, 'UpdateDeployment', {
        moduleType: `MODULE_TYPE_${s.type}`,
        action: 'DEPLOYMENT_ACTION_SET_WEIGHT',
        version: s.version,
        weight: s.weight,
        validateOnly,
        requestedBy: 'mpctl config sync',
        reason: `Manager revision ${out.revision || '(none)'}`,
      });
    const deferred = new Set<string>();

    // 1. Validate everything; 2. apply (unless --dry-run).
    for (const validateOnly of flags['dry-run'] ? [true] : [true, false]) {
      if (scalingBody)
        await withValidationErrors(() => this.callNlb(flags, 'UpdateNLBConfig', scalingReq(validateOnly)));
      if (routes?.length)
        await withValidationErrors(() => this.callNlb(flags, 'UpdateRouting', { routes, validateOnly }));
      const seen = new Set<string>();
      for (const s of steps) {
        if (deferred.has(s.type) || (validateOnly && seen.has(s.type))) continue;
        seen.add(s.type);
        try {
          await deploy(s, validateOnly);
        } catch (e) {
          if (
            e instanceof CliFailure &&
            (e.exitCode === ExitCode.notFound || e.exitCode === ExitCode.domain)
          ) {
            deferred.add(s.type);
            out.warnings.push(`deployments.${s.type}: deferred, ${e.message}`);
          } else throw e;
        }
      }
    }
    out.applied = {
      scalingPolicies: doc.scalingPolicies?.length ?? 0,
      routes: routes?.length ?? 0,
      deployments: new Set(steps.map((s) => s.type).filter((t) => !deferred.has(t))).size,
    };
    if (doc.rateLimits?.length)
      out.warnings.push(
        `rateLimits: ${doc.rateLimits.length} validated but not pushed; set them on the controllers with mpctl module ratelimits set`,
      );
    if (!this.jsonEnabled()) {
      this.out(
        `${flags['dry-run'] ? 'validated' : 'applied'} Manager revision ${out.revision || '(none)'}: ${out.applied.scalingPolicies} scaling policies, ${out.applied.routes} routes, ${out.applied.deployments} deployments`,
      );
      for (const w of out.warnings) this.warn(w);
    }
    return out;
  }
}
