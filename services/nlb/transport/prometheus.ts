/** Prometheus series for the NLB (prom-client), fed by NLB events and the RPC observer. */
import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { CallObserver } from '../../shared/grpc/handlers.js';
import type { Dataplane, DataplaneObserver } from '../dataplane/dataplane.js';
import type { Nlb } from '../nlb.js';

export interface NlbPrometheus {
  registry: PromRegistry;
  observeRpc: CallObserver;
  /** Where the data plane's listeners report connections, bytes and failures. */
  dataplane: DataplaneObserver;
  /** Adds gauges read from the data plane at scrape time (listeners up, buffered bytes, ejections). */
  trackDataplane(d: Dataplane): void;
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
  const limitHits = new Counter({
    name: 'mp_nlb_limit_hits_total',
    help: 'Requests refused because a limit was reached (registrations per token, routes, stream subscribers, …)',
    labelNames: ['limit'],
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
      case 'limit':
        limitHits.inc({ limit: e.limit });
        break;
    }
  });

  return {
    registry,
    dataplane: createDataplaneSeries(registry),
    trackDataplane: (d) => trackDataplane(registry, d, nlb),
    observeRpc(method, code, durationMs) {
      const m = method.split('/').pop() ?? method;
      rpcs.inc({ method: m, code: grpcStatus[code] ?? String(code) });
      rpcSeconds.observe({ method: m }, durationMs / 1000);
    },
  };
}

/** The data plane's series (docs/dataplane.md "Listener behaviour" step 5). */
function createDataplaneSeries(registry: PromRegistry): DataplaneObserver {
  const conn = ['listener', 'protocol', 'module_type', 'version', 'instance'];
  const accepted = new Counter({
    name: 'mp_nlb_dataplane_connections_accepted_total',
    help: 'Client connections accepted, by listener',
    labelNames: ['listener'],
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'mp_nlb_dataplane_connections_rejected_total',
    help: 'Client connections closed at accept (max_connections, stopping), by listener and reason',
    labelNames: ['listener', 'reason'],
    registers: [registry],
  });
  const opened = new Counter({
    name: 'mp_nlb_dataplane_connections_total',
    help: 'Connections forwarded to an instance',
    labelNames: conn,
    registers: [registry],
  });
  const closed = new Counter({
    name: 'mp_nlb_dataplane_connections_closed_total',
    help: 'Forwarded connections closed, by how they ended',
    labelNames: [...conn, 'reason'],
    registers: [registry],
  });
  const active = new Gauge({
    name: 'mp_nlb_dataplane_active_connections',
    help: 'Forwarded connections open now',
    labelNames: conn,
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'mp_nlb_dataplane_bytes_total',
    help: 'Bytes forwarded (in: client to instance, out: instance to client); open connections report every metrics tick',
    labelNames: ['listener', 'module_type', 'version', 'instance', 'direction'],
    registers: [registry],
  });
  const detection = new Counter({
    name: 'mp_nlb_dataplane_detection_failures_total',
    help: 'Connections closed because the protocol could not be told (no default protocol), by reason',
    labelNames: ['listener', 'reason'],
    registers: [registry],
  });
  const routing = new Counter({
    name: 'mp_nlb_dataplane_routing_failures_total',
    help: 'Connections closed because no instance could take them, by reason',
    labelNames: ['listener', 'protocol', 'reason'],
    registers: [registry],
  });
  const connectFailures = new Counter({
    name: 'mp_nlb_dataplane_connect_failures_total',
    help: 'Failed connects to instances (each is retried on another instance), by reason',
    labelNames: ['listener', 'module_type', 'instance', 'reason'],
    registers: [registry],
  });
  const connectSeconds = new Histogram({
    name: 'mp_nlb_dataplane_connect_seconds',
    help: 'Time to connect to the chosen instance',
    labelNames: ['listener', 'module_type'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2],
    registers: [registry],
  });
  const ejections = new Counter({
    name: 'mp_nlb_dataplane_ejections_total',
    help: 'Instances ejected after consecutive connect failures',
    labelNames: ['module_type', 'instance'],
    registers: [registry],
  });
  return {
    accepted: (l) => accepted.inc({ listener: l }),
    rejected: (l, reason) => rejected.inc({ listener: l, reason }),
    detectionFailed: (l, reason) => detection.inc({ listener: l, reason }),
    routingFailed: (l, protocol, reason) => routing.inc({ listener: l, protocol, reason }),
    connectFailed: (x, reason) =>
      connectFailures.inc({ listener: x.listener, module_type: x.module_type, instance: x.instance, reason }),
    opened: (x, connectMs) => {
      opened.inc({ ...x });
      active.inc({ ...x });
      connectSeconds.observe({ listener: x.listener, module_type: x.module_type }, connectMs / 1000);
    },
    bytes: (x, bytesIn, bytesOut) => {
      const l = {
        listener: x.listener,
        module_type: x.module_type,
        version: x.version,
        instance: x.instance,
      };
      if (bytesIn) bytes.inc({ ...l, direction: 'in' }, bytesIn);
      if (bytesOut) bytes.inc({ ...l, direction: 'out' }, bytesOut);
    },
    closed: (x, reason) => {
      closed.inc({ ...x, reason });
      active.dec({ ...x });
    },
    ejected: (module_type, instance) => ejections.inc({ module_type, instance }),
  };
}

function trackDataplane(registry: PromRegistry, d: Dataplane, nlb: Nlb): void {
  new Gauge({
    name: 'mp_nlb_dataplane_info',
    help: 'The data plane: who forwards connected pairs (relay="native" or "js") and its worker processes',
    labelNames: ['relay', 'workers'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ relay: d.relayInfo.mode, workers: String(d.workers) }, 1);
    },
  });
  new Gauge({
    name: 'mp_nlb_dataplane_listener_up',
    help: 'Configured listeners: 1 when accepting, 0 when it could not bind',
    labelNames: ['listener', 'mode'],
    registers: [registry],
    collect() {
      this.reset();
      for (const l of d.addresses()) this.set({ listener: l.name, mode: l.mode }, 1);
      for (const name of Object.keys(d.failed())) this.set({ listener: name, mode: '' }, 0);
    },
  });
  new Gauge({
    name: 'mp_nlb_dataplane_buffered_bytes',
    help: "Bytes held in the NLB's socket buffers across forwarded connections",
    registers: [registry],
    collect() {
      this.set(d.bufferedBytes());
    },
  });
  new Gauge({
    name: 'mp_nlb_dataplane_ejected_instances',
    help: 'Instances left out of selection after consecutive connect failures, by module type',
    labelNames: ['module_type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const e of d.outlier.ejectedInstances(nlb.deps.clock.now())) this.inc({ module_type: e.pool });
    },
  });
}
