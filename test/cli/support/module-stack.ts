/**
 * A real NLB and real module controllers (startNlb / startModule, in this process, silent, on
 * 127.0.0.1:0) for the module CLI tests, and `mpctl` bound to that NLB. close() stops every
 * controller, then the NLB, and removes the controllers' state directories.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListModulesRequest } from '../../../proto/gen/marchproxy/nlb.js';
import type { ModuleInstance } from '../../../proto/gen/marchproxy/types.js';
import {
  moduleProcessSchema,
  startModule,
  type ModuleHandle,
} from '../../../services/modules/runtime/main.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../../services/nlb/main.js';
import { createClientConnection, createNlbClient, unaryCall } from '../../../services/shared/grpc/client.js';
import { mpctl } from './oclif.js';

export type ModuleType = 'alb' | 'dblb' | 'ailb' | 'rtmp';

export interface ModuleStack {
  /** The NLB's gRPC host:port. */
  nlb: string;
  nlbHandle: NlbHandle;
  /** Starts a controller registering with this NLB; resolves once its instances are registered. */
  startModule(type: ModuleType, version: string, instances?: number): Promise<ModuleHandle>;
  /** The instances the NLB lists now. */
  registered(): Promise<ModuleInstance[]>;
  /** Polls `probe` every 50 ms until it is truthy; fails after `timeoutMs`. */
  waitFor(what: string, probe: () => Promise<boolean> | boolean, timeoutMs?: number): Promise<void>;
  /** `mpctl <argv…> --nlb <this NLB>`. */
  run(argv: string[]): ReturnType<typeof mpctl>;
  close(): Promise<void>;
}

export async function startModuleStack(): Promise<ModuleStack> {
  const nlbHandle = await startNlb(
    nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      dataDir: '',
      logLevel: 'silent',
      heartbeatIntervalSeconds: 1,
    }),
  );
  const nlb = `127.0.0.1:${nlbHandle.grpcPort}`;
  const client = createNlbClient(createClientConnection({ target: nlb, timeoutMs: 5000 }));
  const modules: ModuleHandle[] = [];
  const dirs: string[] = [];

  const stack: ModuleStack = {
    nlb,
    nlbHandle,
    async registered() {
      const res = await unaryCall(client, 'listModules', ListModulesRequest.fromPartial({}));
      return res.modules;
    },
    async waitFor(what, probe, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!(await probe())) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async startModule(type, version, instances = 1) {
      const dataDir = mkdtempSync(join(tmpdir(), 'mpctl-module-test-'));
      dirs.push(dataDir);
      const handle = await startModule(
        moduleProcessSchema.parse({
          type,
          version,
          instances,
          grpc: { host: '127.0.0.1', port: 0 },
          nlb,
          provider: 'inprocess',
          dataDir,
          logLevel: 'silent',
          heartbeatIntervalSeconds: 1,
        }),
      );
      modules.push(handle);
      await stack.waitFor(`${type} ${version} to register ${instances} instance(s)`, async () => {
        const mine = (await stack.registered()).filter((i) => i.address === handle.address);
        return mine.length >= instances;
      });
      return handle;
    },
    run: (argv) => mpctl([...argv, '--nlb', nlb]),
    async close() {
      client.close();
      await Promise.all(modules.splice(0).map((m) => m.stop(false).catch(() => undefined)));
      await nlbHandle.stop();
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
  return stack;
}
