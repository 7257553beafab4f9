/** Prometheus series for the NLB (prom-client), fed by NLB events and the RPC observer. */
import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { CallObserver } from '../../shared/grpc/handlers.js';
import type { Nlb } from '../nlb.js';

export interface NlbPrometheus {
  registry: PromRegistry;
  observeRpc: CallObserver;
}

/** Registers the NLB's series and subscribes them to its events. */
export function createNlbPrometheus(nlb: Nlb): NlbPrometheus {
  const registry = new PromRegistry();
  // prom-client's names already start with process_ / nodejs_ (mp_nlb_process_cpu_seconds_total).
  collectDefaultMetrics({ register: registry, prefix: 'mp_nlb_' });
  const rpcs = new Counter({
    name: 'mp_nlb_rpcs_total',
    help: 'gRPC calls handled, by method and status code',
    labelNames: ['method', 'code'],
    registers: [registry],
  });
  const rpcSeconds = new Histogram({
    name: 'mp_nlb_rpc_duration_seconds',
    help: 'gRPC handler time by method',
    labelNames: ['method'],
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  const heartbeats = new Counter({
    name: 'mp_nlb_heartbeats_total',
    help: 'Heartbeats received, by whether they were acknowledged',
    labelNames: ['acknowledged', 'module_type'],
    registers: [registry],
  });
  const registryEvents = new Counter({
    name: 'mp_nlb_registry_events_total',
    help: 'Registrations, health changes and removals',
    labelNames: ['event', 'reason', 'module_type'],
    registers: [registry],
  });
  const routing = new Counter({
    name: 'mp_nlb_routing_decisions_total',
    help: 'Routing decisions by result, module type and version',
    labelNames: ['result', 'module_type', 'version'],
    registers: [registry],
  });
  const scaling = new Counter({
    name: 'mp_nlb_scaling_events_total',
    help: 'Scaling actions by module type, version, action and outcome',
    labelNames: ['module_type', 'version', 'action', 'outcome'],
    registers: [registry],
  });
  const rollout = new Counter({
    name: 'mp_nlb_rollout_events_total',
    help: 'Deployment changes by module type and action',
    labelNames: ['module_type', 'action', 'phase'],
    registers: [registry],
  });
  const configChanges = new Counter({
    name: 'mp_nlb_config_changes_total',
    help: 'Config sections applied',
    labelNames: ['section'],
    registers: [registry],
  });
  new Gauge({
    name: 'mp_nlb_instances',
    help: 'Registered instances by module type, version and health',
    labelNames: ['module_type', 'version', 'health'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of nlb.registry.all())
        this.inc({ module_type: r.moduleType, version: r.version, health: r.health });
    },
  });
  new Gauge({
    name: 'mp_nlb_deployment_weight',
    help: 'Traffic weight (0-100) of each version',
    labelNames: ['module_type', 'version'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of nlb.deployments.all())
        for (const [v, w] of Object.entries(d.weights))
          this.set({ module_type: d.moduleType, version: v }, w);
    },
  });
  new Gauge({
    name: 'mp_nlb_routes',
    help: 'Routes in the routing table by owner kind',
    labelNames: ['owner'],
    registers: [registry],
    collect() {
      this.reset();
      const all = nlb.routes.all();
      this.set({ owner: 'operator' }, all.filter((e) => !e.owner).length);
      this.set({ owner: 'instance' }, all.filter((e) => e.owner).length);
    },
  });
  new Gauge({
    name: 'mp_nlb_metric_series',
    help: 'Series held by the in-memory metrics store',
    registers: [registry],
    collect() {
      this.set(nlb.metrics.seriesCount);
    },
  });

  nlb.on((e) => {
    switch (e.type) {
      case 'heartbeat':
        heartbeats.inc({
          acknowledged: String(e.acknowledged),
          module_type: e.instance?.moduleType ?? 'unknown',
        });
        break;
      case 'registry': {
        const ev = e.event;
        const reason = ev.type === 'removed' ? ev.reason : ev.type === 'health' ? `${ev.from}->${ev.to}` : '';
        registryEvents.inc({ event: ev.type, reason, module_type: ev.instance.moduleType });
        break;
      }
      case 'routing':
        routing.inc({ result: e.result, module_type: e.moduleType, version: e.version });
        break;
      case 'scaling':
        scaling.inc({
          module_type: e.moduleType,
          version: e.version,
          action: e.action,
          outcome: e.ok ? 'ok' : 'failed',
        });
        break;
      case 'deployment':
        rollout.inc({ module_type: e.deployment.moduleType, action: e.action, phase: e.deployment.phase });
        break;
      case 'config':
        configChanges.inc({ section: e.section });
        break;
    }
  });

  return {
    registry,
    observeRpc(method, code, durationMs) {
      const m = method.split('/').pop() ?? method;
      rpcs.inc({ method: m, code: grpcStatus[code] ?? String(code) });
      rpcSeconds.observe({ method: m }, durationMs / 1000);
    },
  };
}
