/**
 * An xDS management server (ADS, state of the world; LDS/RDS/CDS/EDS) that publishes the NLB's
 * decisions: per module type (Listener "alb", "dblb", …) a route whose weighted clusters are the
 * type's versions with their deployment weights, and per version a cluster whose endpoints are
 * the ModuleService controllers (instance.address) of that version's HEALTHY instances. Proxyless
 * gRPC clients (`xds:///alb`, @grpc/grpc-js-xds) and Envoy then route to modules by the NLB's
 * weights and health. The protos are the Envoy ones vendored by @grpc/grpc-js-xds.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../../shared/logger.js';
import { MODULE_TYPES } from '../domain/types.js';
import type { Nlb } from '../nlb.js';

export const TYPE = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const;
const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

type Resource = Record<string, unknown> & { name?: string; cluster_name?: string };
type Snapshot = Record<string, Map<string, Resource>>;

let adsService: grpc.ServiceDefinition | undefined;
function loadAds(): grpc.ServiceDefinition {
  if (adsService) return adsService;
  const root = path.dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json'));
  const def = protoLoader.loadSync(
    [
      'envoy/service/discovery/v3/ads.proto',
      'envoy/config/listener/v3/listener.proto',
      'envoy/config/route/v3/route.proto',
      'envoy/config/cluster/v3/cluster.proto',
      'envoy/config/endpoint/v3/endpoint.proto',
      'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
      'envoy/extensions/filters/http/router/v3/router.proto',
    ],
    {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
      json: true,
      includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) =>
        path.join(root, 'deps', d),
      ),
    },
  );
  type Pkg = {
    envoy: {
      service: { discovery: { v3: { AggregatedDiscoveryService: { service: grpc.ServiceDefinition } } } };
    };
  };
  adsService = (grpc.loadPackageDefinition(def) as unknown as Pkg).envoy.service.discovery.v3
    .AggregatedDiscoveryService.service;
  return adsService;
}

function splitHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  return m ? { host: m[1], port: Number(m[2]) } : undefined;
}

/** The resources the NLB's current state maps to (pure; exported for tests). */
export function buildSnapshot(nlb: Nlb, self?: string): Snapshot {
  const snap: Snapshot = {
    [TYPE.listener]: new Map(),
    [TYPE.route]: new Map(),
    [TYPE.cluster]: new Map(),
    [TYPE.endpoint]: new Map(),
  };
  const instances = nlb.registry.all();
  const publish = (name: string, action: Record<string, unknown>) => {
    snap[TYPE.route].set(`${name}-route`, {
      '@type': TYPE.route,
      name: `${name}-route`,
      virtual_hosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '' }, route: action }] }],
    });
    snap[TYPE.listener].set(name, {
      '@type': TYPE.listener,
      name,
      api_listener: {
        api_listener: {
          '@type': HCM,
          rds: { route_config_name: `${name}-route`, config_source: { ads: {} } },
          http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
        },
      },
    });
  };
  const cluster = (name: string, addresses: Array<{ host: string; port: number }>, zone: string) => {
    snap[TYPE.cluster].set(name, {
      '@type': TYPE.cluster,
      name,
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {} }, service_name: name },
      lb_policy: 'ROUND_ROBIN',
    });
    snap[TYPE.endpoint].set(name, {
      '@type': TYPE.endpoint,
      cluster_name: name,
      endpoints: addresses.length
        ? [
            {
              locality: { region: 'marchproxy', zone, sub_zone: name },
              load_balancing_weight: { value: 1 },
              lb_endpoints: addresses.map((a) => ({
                health_status: 'HEALTHY',
                endpoint: { address: { socket_address: { address: a.host, port_value: a.port } } },
              })),
            },
          ]
        : [],
    });
  };
  // The NLB itself (xds:///nlb), so mpctl --nlb can use xDS too.
  const own = self ? splitHostPort(self) : undefined;
  if (own) {
    cluster('nlb', [own], 'nlb');
    publish('nlb', { cluster: 'nlb' });
  }
  for (const t of MODULE_TYPES) {
    const name = t.toLowerCase();
    const ofType = instances.filter((r) => r.moduleType === t);
    if (!ofType.length) continue;
    let weights: Record<string, number>;
    try {
      weights = { ...nlb.deployment(t).weights };
    } catch {
      weights = {};
    }
    const versions = [...new Set(ofType.map((r) => r.version))].sort();
    if (!Object.keys(weights).length)
      for (const v of versions) weights[v] = Math.round(100 / versions.length);
    const clusterName = (v: string) => `${name}@${v}`;
    for (const v of versions) {
      const healthy = [
        ...new Set(ofType.filter((r) => r.version === v && r.health === 'HEALTHY').map((r) => r.address)),
      ]
        .map(splitHostPort)
        .filter((a): a is { host: string; port: number } => Boolean(a));
      cluster(clusterName(v), healthy, name);
    }
    const weighted = versions.filter((v) => (weights[v] ?? 0) > 0);
    const action = weighted.length
      ? weighted.length === 1
        ? { cluster: clusterName(weighted[0]) }
        : {
            weighted_clusters: {
              clusters: weighted.map((v) => ({ name: clusterName(v), weight: { value: weights[v] } })),
            },
          }
      : { cluster: clusterName(versions[0]) };
    publish(name, action);
  }
  return snap;
}

interface DiscoveryRequest {
  type_url: string;
  resource_names: string[];
  response_nonce: string;
  version_info: string;
  error_detail?: { message?: string } | null;
  node?: { id?: string } | null;
}

export interface XdsServerOptions {
  nlb: Nlb;
  /** The NLB's own gRPC address, published as xds:///nlb. */
  self?: string;
  logger: Logger;
  host?: string;
  port: number;
}

export interface XdsHandle {
  port: number;
  address: string;
  /** Recomputes the snapshot and pushes changes (also runs on every NLB event). */
  refresh(): void;
  /** The snapshot version (increments when a resource changes). */
  version(): number;
  stop(): Promise<void>;
}

/** Starts the ADS server on its own gRPC port; pushes on registry, health and weight changes. */
export async function startXdsServer(o: XdsServerOptions): Promise<XdsHandle> {
  const log = o.logger;
  let snapshot = buildSnapshot(o.nlb, o.self);
  let version = 1;
  let nonce = 0;
  const streams = new Set<{ push(): void; end(): void }>();

  const refresh = () => {
    const next = buildSnapshot(o.nlb, o.self);
    const same = Object.keys(next).every(
      (t) => JSON.stringify([...next[t]].sort()) === JSON.stringify([...snapshot[t]].sort()),
    );
    if (same) return;
    snapshot = next;
    version++;
    for (const s of streams) s.push();
  };
  o.nlb.on((e) => {
    void e;
    refresh();
  });
  // Leases expire on the sweeper's clock, not always with an event: poll as a backstop.
  const poll = setInterval(refresh, 1000);
  poll.unref();

  const server = new grpc.Server();
  server.addService(loadAds(), {
    StreamAggregatedResources(call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>) {
      const subscribed = new Map<string, Set<string>>();
      const sent = new Map<string, { version: number; names: string }>();
      const send = (typeUrl: string, force: boolean) => {
        const names = subscribed.get(typeUrl);
        if (!names) return;
        const all = snapshot[typeUrl] ?? new Map();
        const wanted = names.size ? [...names] : [...all.keys()];
        const resources = wanted.flatMap((n) => (all.has(n) ? [all.get(n)!] : []));
        const key = JSON.stringify(wanted.sort());
        const last = sent.get(typeUrl);
        if (!force && last && last.version === version && last.names === key) return;
        sent.set(typeUrl, { version, names: key });
        call.write({ version_info: String(version), type_url: typeUrl, nonce: String(++nonce), resources });
      };
      const stream = {
        push: () => {
          for (const t of subscribed.keys()) send(t, false);
        },
        end: () => call.end(),
      };
      streams.add(stream);
      call.on('data', (req: DiscoveryRequest) => {
        if (req.error_detail?.message)
          log.warn(`xDS client ${req.node?.id ?? '?'} rejected ${req.type_url}: ${req.error_detail.message}`);
        subscribed.set(req.type_url, new Set(req.resource_names));
        send(req.type_url, false);
      });
      const close = () => streams.delete(stream);
      call.on('end', () => {
        close();
        call.end();
      });
      call.on('error', close);
      call.on('cancelled', close);
    },
  });
  const host = o.host ?? '0.0.0.0';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${o.port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const address = `${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  log.info(`xDS (ADS) management server on ${address}`);
  return {
    port,
    address,
    refresh,
    version: () => version,
    stop: () =>
      new Promise<void>((resolve) => {
        clearInterval(poll);
        for (const s of streams) s.end();
        streams.clear();
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}

/** A grpc-js-xds bootstrap (JSON) pointing at this server, for clients and `mpctl --xds-bootstrap`. */
export function xdsBootstrap(serverAddress: string, nodeId = 'mpctl'): string {
  return JSON.stringify({
    xds_servers: [
      { server_uri: serverAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: { id: nodeId, cluster: 'marchproxy', locality: { region: 'marchproxy' } },
    server_listener_resource_name_template: 'grpc/server?xds.resource.listening_address=%s',
  });
}
