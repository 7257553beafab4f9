/**
 * Manager API sync: pulls the Manager's configuration document (HTTP GET with an API key) on an
 * interval and on demand, validates it (document.ts), then applies it only through the NLB's own
 * validated core methods (updateConfig, checkRoutes/applyRoutes, updateDeployment). A document
 * that fails any check is applied not at all: the last good config stays in force and a warning
 * says why. Deployments whose type or version has not registered yet are deferred, not failed.
 * Rate limits live on the module controllers: with a controller client configured they are pushed
 * there and kept in sync (rate-limit-push.ts), retried per controller until it converges.
 */
import type { Registry as PromRegistry } from 'prom-client';
import { DomainError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { OPERATOR } from '../domain/routes.js';
import type { ModuleTypeName } from '../domain/types.js';
import type { Nlb } from '../nlb.js';
import {
  MANAGER_ROUTE_PREFIX,
  describeIssues,
  managerDocumentSchema,
  toRouteSpec,
  toScalingOverrides,
  type ManagerDocument,
  type ManagerRateLimit,
} from './document.js';
import { createManagerSyncMetrics, type ManagerSyncMetrics } from './metrics.js';
import {
  RateLimitReconciler,
  controllersOf,
  type ControllerRateLimitClient,
  type RateLimitSyncStatus,
} from './rate-limit-push.js';

/** Where the Manager's rate limits go (module controllers); returns non-fatal warnings. */
export interface RateLimitSink {
  apply(limits: ManagerRateLimit[]): Promise<string[] | void>;
}

export interface ManagerSyncOptions {
  /** Base URL of the Manager, e.g. https://manager.example:8000. */
  url: string;
  apiKey?: string;
  /** Document path under url [default: /api/v1/nlb/config]. */
  path?: string;
  intervalMs: number;
  timeoutMs: number;
  nlb: Nlb;
  logger: Logger;
  fetch?: typeof fetch;
  /** Pushes rate limits to module controllers through this client (main.ts: gRPC). */
  controllers?: ControllerRateLimitClient;
  /** Retry timing of that push [500 ms doubling to 30 s]. */
  rateLimitRetry?: { initialMs: number; maxMs: number };
  /** Another destination for rate limits (instead of `controllers`). */
  rateLimits?: RateLimitSink;
  /** Registers the sync's series here (the NLB's /metrics). */
  metrics?: PromRegistry;
}

export interface SyncResult {
  ok: boolean;
  /** true when the document equals the last good one (nothing to apply). */
  unchanged: boolean;
  revision: string;
  applied: {
    scalingPolicies: number;
    routes: number;
    routesRemoved: number;
    deployments: number;
    rateLimits: number;
  };
  /** Deferred parts and other non-fatal notes. */
  warnings: string[];
  /** Why the document was not applied (ok=false); the last good config stays. */
  error?: string;
  problems: string[];
}

export interface SyncStatus {
  url: string;
  lastAttemptAt?: number;
  lastGood?: { revision: string; at: number; document: ManagerDocument };
  /** Last sync that ended with the Manager's config in force (applied or unchanged). */
  lastSuccessAt?: number;
  lastResult?: SyncResult;
  /** The rate-limit push to module controllers, when configured. */
  rateLimits?: RateLimitSyncStatus;
}

export const DEFAULT_MANAGER_PATH = '/api/v1/nlb/config';

/** Why a sync failed: unreachable/timeout/5xx, API key refused, or a document not applied. */
export class SyncFailure extends Error {
  constructor(
    message: string,
    readonly problems: string[] = [],
    readonly kind: 'unavailable' | 'unauthenticated' | 'invalid' = 'invalid',
  ) {
    super(message);
  }
}

/** GETs and validates the Manager document; throws SyncFailure with a one-line reason. */
export async function fetchManagerDocument(
  o: Pick<ManagerSyncOptions, 'url' | 'apiKey' | 'path' | 'timeoutMs' | 'fetch'>,
): Promise<ManagerDocument> {
  const url = new URL(o.path ?? DEFAULT_MANAGER_PATH, o.url).toString();
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, {
      headers: { accept: 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
      signal: AbortSignal.timeout(o.timeoutMs),
    });
  } catch (e) {
    const name = (e as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError')
      throw new SyncFailure(
        `the Manager did not answer within ${o.timeoutMs} ms (${url})`,
        [],
        'unavailable',
      );
    throw new SyncFailure(`the Manager is unreachable (${url}): ${(e as Error).message}`, [], 'unavailable');
  }
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    throw new SyncFailure(`reading the Manager's answer failed: ${(e as Error).message}`, [], 'unavailable');
  }
  if (res.status === 401 || res.status === 403)
    throw new SyncFailure(
      `the Manager refused the API key (HTTP ${res.status}); check the manager API key`,
      [],
      'unauthenticated',
    );
  if (!res.ok)
    throw new SyncFailure(
      `the Manager answered HTTP ${res.status} ${res.statusText}`.trim(),
      [],
      'unavailable',
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SyncFailure(`the Manager's answer is not JSON: ${(e as Error).message}`);
  }
  const parsed = managerDocumentSchema.safeParse(json);
  if (!parsed.success) {
    const problems = describeIssues(parsed.error);
    throw new SyncFailure(`the Manager's document is invalid: ${problems[0]}`, problems);
  }
  return parsed.data;
}

function emptyResult(): SyncResult {
  return {
    ok: false,
    unchanged: false,
    revision: '',
    applied: { scalingPolicies: 0, routes: 0, routesRemoved: 0, deployments: 0, rateLimits: 0 },
    warnings: [],
    problems: [],
  };
}

/** Plans and (unless dryRun) applies a validated document to the NLB. Throws SyncFailure. */
export async function applyManagerDocument(
  nlb: Nlb,
  doc: ManagerDocument,
  o: { dryRun?: boolean; rateLimits?: RateLimitSink } = {},
): Promise<SyncResult> {
  const result = emptyResult();
  result.revision = doc.revision === undefined ? '' : String(doc.revision);
  const problems: string[] = [];
  const domain = (label: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      if (e instanceof DomainError) problems.push(`${label}: ${e.message}`);
      else throw e;
    }
  };

  // 1. Validate everything against the NLB's own rules before changing anything.
  let scalingBody: Record<string, unknown> | undefined;
  if (doc.scalingPolicies) {
    const current = nlb.config.scaling;
    scalingBody = {
      ...current,
      overrides: toScalingOverrides(doc, current.defaults),
    };
    domain('scalingPolicies', () => nlb.updateConfig('scaling', scalingBody, true));
  }
  let routePlan: ReturnType<Nlb['checkRoutes']> | undefined;
  let staleRoutes: string[] = [];
  if (doc.routes) {
    routePlan = nlb.checkRoutes(doc.routes.map(toRouteSpec), OPERATOR);
    problems.push(...routePlan.problems.map((p) => `routes: ${p}`));
    const wanted = new Set(routePlan.routes.map((r) => r.routeId));
    staleRoutes = nlb.routes
      .all()
      .filter((e) => e.owner === OPERATOR && e.route.routeId.startsWith(MANAGER_ROUTE_PREFIX))
      .map((e) => e.route.routeId)
      .filter((id) => !wanted.has(id));
  }
  const deploymentSteps: Array<{ type: ModuleTypeName; version: string; weight: number }> = [];
  for (const d of doc.deployments ?? []) {
    let current: Record<string, number>;
    try {
      current = nlb.deployment(d.module).weights;
    } catch (e) {
      if (!(e instanceof DomainError)) throw e;
      result.warnings.push(`deployments.${d.module}: deferred, ${e.message}`);
      continue;
    }
    const known = nlb.registeredVersions(d.module);
    const missing = Object.keys(d.weights).filter((v) => d.weights[v] > 0 && !known.has(v));
    if (missing.length) {
      result.warnings.push(
        `deployments.${d.module}: deferred, version ${missing.join(', ')} has not registered yet`,
      );
      continue;
    }
    const same = Object.entries(d.weights).every(([v, w]) => (current[v] ?? 0) === w);
    if (same) continue;
    // Lowest weights first: each SET_WEIGHT redistributes the rest; the largest lands last.
    const order = Object.entries(d.weights).sort((a, b) => a[1] - b[1]);
    for (const [version, weight] of order.slice(0, Math.max(1, order.length - 1)))
      deploymentSteps.push({ type: d.module, version, weight });
    const first = deploymentSteps.find((s) => s.type === d.module)!;
    domain(`deployments.${d.module}`, () =>
      nlb.updateDeployment(d.module, 'SET_WEIGHT', {
        version: first.version,
        weight: first.weight,
        promotionRate: 0,
        immediate: false,
        validateOnly: true,
        reason: '',
        requestedBy: 'manager-sync',
      }),
    );
  }
  if (problems.length)
    throw new SyncFailure(`the NLB rejected the Manager's document: ${problems[0]}`, problems);
  if (o.dryRun) {
    result.ok = true;
    result.applied = {
      scalingPolicies: doc.scalingPolicies?.length ?? 0,
      routes: routePlan?.routes.length ?? 0,
      routesRemoved: staleRoutes.length,
      deployments: new Set(deploymentSteps.map((s) => s.type)).size,
      rateLimits: doc.rateLimits?.length ?? 0,
    };
    return result;
  }

  // 2. Apply.
  if (scalingBody) {
    nlb.updateConfig('scaling', scalingBody, false);
    result.applied.scalingPolicies = doc.scalingPolicies!.length;
  }
  if (routePlan) {
    for (const id of staleRoutes) nlb.mutateDurable(() => nlb.routes.remove(id));
    result.applied.routes = nlb.applyRoutes(routePlan.routes, routePlan.moduleTypes, OPERATOR, false);
    result.applied.routesRemoved = staleRoutes.length;
  }
  const types = new Set<ModuleTypeName>();
  for (const s of deploymentSteps) {
    try {
      nlb.updateDeployment(s.type, 'SET_WEIGHT', {
        version: s.version,
        weight: s.weight,
        promotionRate: 0,
        immediate: false,
        validateOnly: false,
        reason: 'Manager sync',
        requestedBy: 'manager-sync',
      });
      types.add(s.type);
    } catch (e) {
      if (!(e instanceof DomainError)) throw e;
      result.warnings.push(`deployments.${s.type}: ${s.version} → ${s.weight} %: ${e.message}`);
    }
  }
  result.applied.deployments = types.size;
  if (doc.rateLimits) {
    if (o.rateLimits) {
      result.warnings.push(...((await o.rateLimits.apply(doc.rateLimits)) ?? []));
      result.applied.rateLimits = doc.rateLimits.length;
    } else if (doc.rateLimits.length)
      result.warnings.push(
        `rateLimits: ${doc.rateLimits.length} validated but not pushed (rate limits live on module controllers; no sink configured)`,
      );
  }
  result.ok = true;
  return result;
}

/** The interval loop and on-demand sync; keeps the last good document. */
export class ManagerSync {
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<SyncResult> | undefined;
  private readonly state: SyncStatus;
  private readonly reconciler: RateLimitReconciler | undefined;
  private readonly metrics: ManagerSyncMetrics | undefined;

  constructor(private readonly o: ManagerSyncOptions) {
    this.state = { url: o.url };
    this.metrics = o.metrics && createManagerSyncMetrics(o.metrics, () => this.status());
    if (o.controllers && !o.rateLimits) {
      const reconciler = new RateLimitReconciler({
        controllers: () => controllersOf(o.nlb),
        client: o.controllers,
        logger: o.logger,
        callTimeoutMs: o.timeoutMs,
        retryInitialMs: o.rateLimitRetry?.initialMs,
        retryMaxMs: o.rateLimitRetry?.maxMs,
        onChange: (e) => this.metrics?.rateLimitChange(e),
      });
      this.reconciler = reconciler;
      // A (re)started controller's instances register: bring its limits in line at once rather
      // than at the next retry or interval.
      o.nlb.on((e) => {
        if (e.type !== 'registry') return;
        const ev = e.event;
        if (ev.type === 'registered' || (ev.type === 'health' && ev.to === 'HEALTHY'))
          reconciler.controllerSeen(ev.instance.address);
      });
    }
  }

  private get sink(): RateLimitSink | undefined {
    return this.o.rateLimits ?? this.reconciler;
  }

  /** Syncs now, then every intervalMs (0 = on demand only). */
  start(): void {
    void this.syncNow();
    if (this.o.intervalMs > 0) {
      this.timer = setInterval(() => void this.syncNow(), this.o.intervalMs);
      this.timer.unref();
    }
  }

  /** Stops the interval and the rate-limit retries. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.reconciler?.stop();
  }

  status(): SyncStatus {
    const s = structuredClone(this.state);
    if (this.reconciler) s.rateLimits = this.reconciler.status();
    return s;
  }

  /** A summary for GetNLBStatus details (manager_sync.*). */
  statusDetails(): Record<string, string> {
    const s = this.status();
    const r = s.lastResult;
    const out: Record<string, string> = {
      'manager_sync.url': s.url,
      'manager_sync.last_good_revision': s.lastGood ? s.lastGood.revision || '(none)' : '(none yet)',
      'manager_sync.last_result': !r
        ? 'not run yet'
        : r.ok
          ? r.unchanged
            ? 'unchanged'
            : 'applied'
          : `failed: ${r.error}`,
    };
    if (s.lastSuccessAt) out['manager_sync.last_success'] = new Date(s.lastSuccessAt).toISOString();
    if (s.rateLimits) {
      const cs = s.rateLimits.controllers;
      out['manager_sync.rate_limits'] =
        s.rateLimits.limits === null
          ? 'no rate limits from the Manager yet'
          : `${s.rateLimits.limits} limits; ${cs.filter((c) => c.state === 'in_sync').length}/${cs.length} controllers in sync`;
      for (const c of cs.slice(0, 32))
        out[`manager_sync.rate_limits.${c.address}`] =
          `${c.moduleType} ${c.version} ${c.state}` +
          (c.state === 'retrying'
            ? ` (attempt ${c.attempts}, next in ${(Math.max(0, (c.nextRetryAtMs ?? 0) - Date.now()) / 1000).toFixed(1)} s): ${c.lastError}`
            : ` (${c.managed} managed, ${c.operator} operator-set${c.conflicts.length ? `, conflicts: ${c.conflicts.join(' ')}` : ''})`);
    }
    return out;
  }

  /** One sync; concurrent callers share the one in flight. Never throws. */
  syncNow(): Promise<SyncResult> {
    this.inflight ??= this.run().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async run(): Promise<SyncResult> {
    const log = this.o.logger;
    this.state.lastAttemptAt = Date.now();
    let result: SyncResult;
    try {
      const doc = await fetchManagerDocument(this.o);
      const last = this.state.lastGood;
      if (last && JSON.stringify(last.document) === JSON.stringify(doc)) {
        result = { ...emptyResult(), ok: true, unchanged: true, revision: last.revision };
        // Same document: still check the controllers (drift, a controller restarted empty).
        if (this.reconciler) result.warnings.push(...(await this.reconciler.reconcileAll()));
      } else {
        result = await applyManagerDocument(this.o.nlb, doc, { rateLimits: this.sink });
        this.state.lastGood = { revision: result.revision, at: Date.now(), document: doc };
        log.info(`Manager sync applied revision ${result.revision || '(none)'}`, { applied: result.applied });
      }
      this.state.lastSuccessAt = Date.now();
      this.metrics?.synced(result.unchanged ? 'unchanged' : 'applied');
      // Retrying controllers warn from the reconciler itself; the rest of the notes here.
      for (const w of result.warnings)
        if (!w.startsWith('rateLimits: ') || !this.reconciler) log.warn(`Manager sync: ${w}`);
    } catch (e) {
      const problems = e instanceof SyncFailure ? e.problems : [];
      const message = e instanceof SyncFailure ? e.message : `unexpected error: ${String(e)}`;
      result = { ...emptyResult(), error: message, problems };
      const kept = this.state.lastGood
        ? `keeping the last good config (revision ${this.state.lastGood.revision || '(none)'})`
        : 'keeping the current config';
      log.warn(`Manager sync failed: ${message}; ${kept}`, { problems });
      this.metrics?.synced('failed');
    }
    this.state.lastResult = result;
    return result;
  }
}
