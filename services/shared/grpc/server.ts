/**
 * Server-side gRPC factory shared by the NLB and the modules: TLS and mutual TLS from files,
 * bearer-token auth on every call (auth-interceptor.ts), message size limits, keepalive, the
 * standard health service and server reflection, and a bounded graceful stop.
 */
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Authenticator } from '../auth.js';
import type { Logger } from '../logger.js';
import { createAuthInterceptor } from './auth-interceptor.js';
import { readPemFile } from './pem.js';
import { marchproxyPackageDefinition } from './proto-package.js';

export const DEFAULT_SERVER_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_STOP_GRACE_MS = 5_000;

export interface ServerTlsOptions {
  /** PEM certificate chain the server presents. */
  certFile: string;
  keyFile: string;
  /** PEM CA bundle that client certificates must chain to (mutual TLS). */
  caFile?: string;
  /** Refuse clients without a certificate signed by `caFile`. */
  requireClientCert?: boolean;
}

export interface KeepaliveOptions {
  /** How often the server pings a connection to find dead peers. */
  timeMs: number;
  /** How long a ping may go unanswered before the connection is dropped. */
  timeoutMs: number;
  /** Ping connections that have no calls in flight too. */
  permitWithoutCalls: boolean;
  /** Close connections that carried no call for this long (clients reconnect on demand). */
  maxConnectionIdleMs: number;
}

export const DEFAULT_KEEPALIVE: Readonly<KeepaliveOptions> = {
  timeMs: 60_000,
  timeoutMs: 20_000,
  permitWithoutCalls: true,
  maxConnectionIdleMs: 10 * 60_000,
};

export interface GrpcServerOptions {
  logger: Logger;
  /** Enforced on every call; when absent, auth is off and every principal is "anonymous". */
  auth?: Authenticator;
  /** Plaintext when absent. */
  tls?: ServerTlsOptions;
  /** Largest message accepted or sent (default 16 MiB). */
  maxMessageBytes?: number;
  keepalive?: Partial<KeepaliveOptions>;
  /** Serve grpc.reflection (default true). */
  reflection?: boolean;
  /** Serve grpc.health.v1.Health (default true). */
  health?: boolean;
}

export interface GrpcServer {
  readonly server: grpc.Server;
  /**
   * Registers a service before start(). `serviceName` is the health-check name (e.g.
   * "marchproxy.NLBService"); it defaults to the package-qualified name from the method paths.
   */
  addService<I extends grpc.UntypedServiceImplementation>(
    definition: grpc.ServiceDefinition<I>,
    implementation: I,
    serviceName?: string,
  ): void;
  /** Binds and serves; port 0 picks a free port, which the result reports. */
  start(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Sets a service's health status ("" is the whole server). */
  setServing(serviceName: string, serving: boolean): void;
  /** Reports NOT_SERVING, lets calls finish for up to `graceMs`, then cuts the rest. */
  stop(graceMs?: number): Promise<void>;
}

function serverCredentials(tls: ServerTlsOptions | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  if (tls.requireClientCert && !tls.caFile) {
    throw new Error('requiring client certificates (mutual TLS) needs a CA file to check them against');
  }
  const pair = {
    cert_chain: readPemFile(tls.certFile, 'TLS certificate'),
    private_key: readPemFile(tls.keyFile, 'TLS key'),
  };
  const ca = tls.caFile ? readPemFile(tls.caFile, 'client CA') : null;
  return grpc.ServerCredentials.createSsl(ca, [pair], tls.requireClientCert ?? false);
}

/** "marchproxy.NLBService" from a definition whose paths look like "/marchproxy.NLBService/X". */
function serviceNameOf(definition: grpc.ServiceDefinition): string {
  const first = Object.values(definition)[0] as grpc.MethodDefinition<unknown, unknown> | undefined;
  const name = first?.path.split('/')[1];
  if (!name) throw new Error('cannot tell the service name from an empty service definition; pass it');
  return name;
}

/** A bind error that names the address and says what was wrong, without grpc-js's wrapping. */
function bindFailure(address: string, err: Error): Error {
  // grpc-js says "No address added out of total 1 resolved errors: [listen EADDRINUSE: …]".
  const cause = /errors: \[(.+)\]$/s.exec(err.message)?.[1] ?? err.message;
  const hint = cause.includes('EADDRINUSE')
    ? ' (another process holds the port: stop it or choose another port)'
    : cause.includes('EACCES')
      ? ' (ports below 1024 need privileges: choose a higher port)'
      : '';
  return new Error(`cannot listen for gRPC on ${address}: ${cause}${hint}`, { cause: err });
}

function bindAddress(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Creates a gRPC server with auth, TLS, limits, health and reflection wired in. */
export function createGrpcServer(opts: GrpcServerOptions): GrpcServer {
  const logger = opts.logger;
  const maxBytes = opts.maxMessageBytes ?? DEFAULT_SERVER_MAX_MESSAGE_BYTES;
  const keepalive = { ...DEFAULT_KEEPALIVE, ...opts.keepalive };
  const credentials = serverCredentials(opts.tls);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxBytes,
    'grpc.max_send_message_length': maxBytes,
    'grpc.keepalive_time_ms': keepalive.timeMs,
    'grpc.keepalive_timeout_ms': keepalive.timeoutMs,
    'grpc.keepalive_permit_without_calls': keepalive.permitWithoutCalls ? 1 : 0,
    'grpc.max_connection_idle_ms': keepalive.maxConnectionIdleMs,
    interceptors: [createAuthInterceptor(opts.auth, logger)],
  });

  const health = opts.health === false ? undefined : new HealthImplementation({ '': 'NOT_SERVING' });
  health?.addToServer(server);
  const serviceNames: string[] = [];
  let state: 'new' | 'starting' | 'started' | 'stopped' = 'new';
  let stopping: Promise<void> | undefined;

  const setServing = (serviceName: string, serving: boolean) =>
    health?.setStatus(serviceName, serving ? 'SERVING' : 'NOT_SERVING');

  return {
    server,

    addService(definition, implementation, serviceName) {
      if (state !== 'new') throw new Error('add services before start()');
      server.addService(definition, implementation);
      const name = serviceName ?? serviceNameOf(definition);
      serviceNames.push(name);
      setServing(name, false);
    },

    async start(host, port) {
      if (state !== 'new') throw new Error(`the gRPC server cannot start: it is ${state}`);
      state = 'starting';
      if (opts.reflection !== false) {
        // Only the services this server really has, not every service in the contract.
        new ReflectionService(marchproxyPackageDefinition(), { services: [...serviceNames] }).addToServer(
          server,
        );
      }
      const address = bindAddress(host, port);
      const bound = await new Promise<number>((resolve, reject) => {
        server.bindAsync(address, credentials, (err, actual) => {
          if (err) reject(bindFailure(address, err));
          else resolve(actual);
        });
      }).catch((err: unknown) => {
        state = 'stopped';
        server.forceShutdown();
        throw err;
      });
      if (stopping) {
        server.forceShutdown();
        throw new Error(`the gRPC server on ${address} was stopped while starting`);
      }
      state = 'started';
      setServing('', true);
      for (const name of serviceNames) setServing(name, true);
      logger.info('grpc server listening', {
        address: bindAddress(host, bound),
        tls: opts.tls ? (opts.tls.requireClientCert ? 'mutual' : 'server') : 'off',
        auth: opts.auth?.enabled ?? false,
        services: serviceNames,
      });
      return { host, port: bound };
    },

    setServing,

    stop(graceMs = DEFAULT_STOP_GRACE_MS) {
      stopping ??= new Promise<void>((resolve) => {
        state = 'stopped';
        setServing('', false);
        for (const name of serviceNames) setServing(name, false);
        let done = false;
        const finish = (how: string) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          logger.info('grpc server stopped', { how });
          resolve();
        };
        const timer = setTimeout(() => {
          server.forceShutdown();
          finish(`forced after ${graceMs} ms`);
        }, graceMs);
        server.tryShutdown(() => finish('graceful'));
      });
      return stopping;
    },
  };
}
