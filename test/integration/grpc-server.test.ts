import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { afterEach, describe, expect, it } from 'vitest';
import { GetModuleInfoRequest, NLBServiceService } from '../../proto/gen/marchproxy/nlb.js';
import { createAuthenticator } from '../../services/shared/auth.js';
import { serverStreamCall, unaryCall } from '../../services/shared/grpc/client.js';
import { createGrpcServer } from '../../services/shared/grpc/server.js';
import { memoryLogger, silentLogger } from '../../services/shared/logger.js';
import { AUTH_CONFIG, createHarness, drain, rejectionOf, TOKENS } from './grpc-fixture.js';

const h = createHarness();
afterEach(() => h.closeAll());

interface HealthResponse {
  status: string;
}
interface HealthClient extends grpc.Client {
  check(
    request: { service: string },
    options: Partial<grpc.CallOptions>,
    callback: (err: grpc.ServiceError | null, res?: HealthResponse) => void,
  ): grpc.ClientUnaryCall;
  watch(
    request: { service: string },
    options: Partial<grpc.CallOptions>,
  ): grpc.ClientReadableStream<HealthResponse>;
}
interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
}
interface ReflectionClient extends grpc.Client {
  serverReflectionInfo(
    options: Partial<grpc.CallOptions>,
  ): grpc.ClientDuplexStream<object, ReflectionResponse>;
}

/** A dynamic client class for `service` from a .proto file (enums as strings). */
function loadClient<C extends grpc.Client>(file: string, service: string) {
  const pkg = grpc.loadPackageDefinition(loadSync(file, { enums: String }));
  const ctor = service.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], pkg);
  return ctor as new (target: string, creds: grpc.ChannelCredentials) => C;
}

const HealthClientCtor = loadClient<HealthClient>(healthProtoPath, 'grpc.health.v1.Health');
const reflectionProto = join(
  dirname(createRequire(import.meta.url).resolve('@grpc/reflection')),
  '../proto/grpc/reflection/v1/reflection.proto',
);
const ReflectionClientCtor = loadClient<ReflectionClient>(
  reflectionProto,
  'grpc.reflection.v1.ServerReflection',
);

function healthClient(target: string): HealthClient {
  return h.trackClient(new HealthClientCtor(target, grpc.credentials.createInsecure()));
}

function checkHealth(target: string, service: string): Promise<string> {
  const client = healthClient(target);
  return new Promise((resolve, reject) => {
    client.check({ service }, { deadline: Date.now() + 5_000 }, (err, res) =>
      err ? reject(err) : resolve(res!.status),
    );
  });
}

/** One reflection exchange: sends `requests`, half-closes, collects every response. */
function reflect(target: string, requests: object[]): Promise<ReflectionResponse[]> {
  const client = h.trackClient(new ReflectionClientCtor(target, grpc.credentials.createInsecure()));
  return new Promise((resolve, reject) => {
    const responses: ReflectionResponse[] = [];
    const call = client.serverReflectionInfo({ deadline: Date.now() + 5_000 });
    call.on('data', (r: ReflectionResponse) => responses.push(r));
    call.on('error', reject);
    call.on('end', () => resolve(responses));
    for (const r of requests) call.write(r);
    call.end();
  });
}

describe('gRPC server: health', () => {
  it('reports SERVING overall and per service once started, even with auth on and no token', async () => {
    const { target } = await h.startServer({ auth: createAuthenticator(AUTH_CONFIG) });
    expect(await checkHealth(target, '')).toBe('SERVING');
    expect(await checkHealth(target, 'marchproxy.NLBService')).toBe('SERVING');
  });

  it('reports NOT_SERVING after setServing(false), and SERVING again after setServing(true)', async () => {
    const { target, grpcServer } = await h.startServer();
    grpcServer.setServing('marchproxy.NLBService', false);
    expect(await checkHealth(target, 'marchproxy.NLBService')).toBe('NOT_SERVING');
    expect(await checkHealth(target, '')).toBe('SERVING');
    grpcServer.setServing('marchproxy.NLBService', true);
    expect(await checkHealth(target, 'marchproxy.NLBService')).toBe('SERVING');
  });

  it('answers NOT_FOUND for a service it does not have', async () => {
    const { target } = await h.startServer();
    const err = await rejectionOf(checkHealth(target, 'marchproxy.ModuleService'));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
  });

  it('tells health watchers NOT_SERVING when it stops', async () => {
    const { target, grpcServer } = await h.startServer();
    const statuses: string[] = [];
    const watch = healthClient(target).watch({ service: '' }, { deadline: Date.now() + 5_000 });
    const ended = new Promise<void>((resolve) => {
      watch.on('data', (r: HealthResponse) => {
        statuses.push(r.status);
        if (r.status === 'SERVING') void grpcServer.stop(200);
      });
      watch.on('error', () => resolve());
      watch.on('end', () => resolve());
    });
    await ended;
    expect(statuses).toEqual(['SERVING', 'NOT_SERVING']);
  });

  it('has no health service when health is false', async () => {
    const { target } = await h.startServer({ health: false });
    expect((await rejectionOf(checkHealth(target, ''))).code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('gRPC server: reflection', () => {
  it('lists the services the server has (and only those), with auth on and no token', async () => {
    const { target } = await h.startServer({ auth: createAuthenticator(AUTH_CONFIG) });
    const [res] = await reflect(target, [{ listServices: '' }]);
    const names = res.listServicesResponse!.service.map((s) => s.name);
    expect(names).toEqual(['marchproxy.NLBService']);
  });

  it('describes a service together with the google.protobuf.Timestamp it depends on', async () => {
    const { target } = await h.startServer();
    const [res] = await reflect(target, [{ fileContainingSymbol: 'marchproxy.NLBService' }]);
    const files = res.fileDescriptorResponse!.fileDescriptorProto;
    // proto-loader names descriptors per package ("marchproxy.proto", "google_protobuf.proto").
    const texts = files.map((f) => f.toString('latin1'));
    expect(texts.some((t) => t.includes('NLBService') && t.includes('GetNLBStatus'))).toBe(true);
    expect(
      texts.some((t) => t.includes('google.protobuf') && t.includes('Timestamp') && t.includes('nanos')),
    ).toBe(true);
  });

  it('has no reflection service when reflection is false', async () => {
    const { target } = await h.startServer({ reflection: false });
    expect((await rejectionOf(reflect(target, [{ listServices: '' }]))).code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('gRPC server: limits and lifecycle', () => {
  it('rejects a request over maxMessageBytes with RESOURCE_EXHAUSTED, and accepts one under it', async () => {
    const { target } = await h.startServer({ maxMessageBytes: 64 * 1024 });
    const client = h.nlbClient({ target });
    const small = await unaryCall(
      client,
      'getModuleInfo',
      GetModuleInfoRequest.fromPartial({ instanceId: 'big:' + 'x'.repeat(60_000) }),
    );
    expect(small.details.size).toBe('60004');
    const big = unaryCall(
      client,
      'getModuleInfo',
      GetModuleInfoRequest.fromPartial({ instanceId: 'big:' + 'x'.repeat(70_000) }),
    );
    expect((await rejectionOf(big)).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  it('fails start() on a port in use with an error naming the address and the cause', async () => {
    const { port } = await h.startServer();
    const second = h.track(createGrpcServer({ logger: silentLogger() }));
    const err = (await rejectionOf(second.start('127.0.0.1', port))) as unknown as Error;
    expect(err.message).toMatch(
      new RegExp(`^cannot listen for gRPC on 127\\.0\\.0\\.1:${port}: listen EADDRINUSE`),
    );
    expect(err.message).toContain('another process holds the port');
  });

  it('reports the port it picked, and logs where it listens', async () => {
    const logger = memoryLogger();
    const { port } = await h.startServer({ logger });
    expect(port).toBeGreaterThan(0);
    const line = logger.lines.find((l) => l.msg === 'grpc server listening');
    expect(line?.fields).toMatchObject({ address: `127.0.0.1:${port}`, tls: 'off', auth: false });
  });

  it('refuses services added after start', async () => {
    const { grpcServer } = await h.startServer();
    expect(() => grpcServer.addService(NLBServiceService, {})).toThrow('add services before start()');
  });

  it('stop() cuts a call that outlives the grace period', async () => {
    const { target, grpcServer, streams } = await h.startServer();
    const client = h.nlbClient({ target, token: TOKENS.read });
    const stream = serverStreamCall(client, 'streamNlbMetrics', {
      intervalSeconds: 0,
      metricNames: [],
      includeModules: false,
    });
    await stream.next();
    const started = performance.now();
    await grpcServer.stop(300);
    const tookMs = performance.now() - started;
    expect(tookMs).toBeGreaterThanOrEqual(250);
    expect(tookMs).toBeLessThan(3_000);
    expect(await streams.nextEnd()).toBe('aborted');
    const err = await rejectionOf(drain(stream));
    expect([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL]).toContain(err.code);
  });

  it('stop() returns at once when nothing is in flight', async () => {
    const { grpcServer } = await h.startServer();
    const started = performance.now();
    await grpcServer.stop(5_000);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
