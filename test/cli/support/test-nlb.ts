/**
 * A throwaway NLBService on 127.0.0.1:0 for CLI tests: a plain grpc-js server with only the
 * handlers a test gives it (the rest answer UNIMPLEMENTED), recording what each call carried.
 */
import { createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { NLBServiceService, type NLBServiceServer } from '../../../proto/gen/marchproxy/nlb.js';

/** What the server saw of one call. */
export interface SeenCall {
  method: string;
  request: unknown;
  authorization: string | undefined;
}

/** A running test NLB. */
export interface TestNlb {
  address: string;
  /** Calls in arrival order. */
  calls: SeenCall[];
  /** Server-streaming calls the client cancelled. */
  cancelledStreams: number;
  close(): Promise<void>;
}

/** Handlers receive the recorder so they can note calls the standard way. */
export type TestHandlers = Partial<NLBServiceServer>;

/** Starts an NLBService with `handlers`; every call is recorded before its handler runs. */
export async function startTestNlb(handlers: TestHandlers): Promise<TestNlb> {
  const server = new grpc.Server();
  const nlb: TestNlb = {
    address: '',
    calls: [],
    cancelledStreams: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Streams the client left open would hold tryShutdown; bound it.
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
  const recorded: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers) as [string, grpc.UntypedHandleCall][]) {
    const method = NLBServiceService[name as keyof typeof NLBServiceService].path;
    recorded[name] = (
      call: grpc.ServerUnaryCall<unknown, unknown>,
      callback?: grpc.sendUnaryData<unknown>,
    ) => {
      const auth = call.metadata.get('authorization')[0];
      nlb.calls.push({
        method,
        request: call.request,
        authorization: typeof auth === 'string' ? auth : undefined,
      });
      call.on('cancelled', () => nlb.cancelledStreams++);
      (handler as (c: unknown, cb?: unknown) => void)(call, callback);
    };
  }
  server.addService(NLBServiceService, recorded);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  nlb.address = `127.0.0.1:${port}`;
  return nlb;
}

/** A loopback port nothing listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
