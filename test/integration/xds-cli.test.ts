/**
 * mpctl with xds:/// targets: `--nlb xds:///nlb` and `--address xds:///alb` resolve through the
 * xDS export that startNlb serves on `xds.port`. The bootstrap comes from
 * GRPC_XDS_BOOTSTRAP_CONFIG (read lazily by @grpc/grpc-js-xds on first use). Loopback only.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GetStatusResponse,
  ModuleServiceService,
  type GetStatusRequest,
} from '../../proto/gen/marchproxy/module.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { xdsBootstrap } from '../../services/nlb/xds/server.js';
import { exitCodeOf, mpctl } from '../cli/support/oclif.js';
import { spec } from '../unit/nlb-fixtures.js';

let nlb: NlbHandle;
let controller: grpc.Server;
let controllerAddress = '';

beforeAll(async () => {
  nlb = await startNlb(
    nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      xds: { host: '127.0.0.1', port: 0 },
      dataDir: '',
      logLevel: 'silent',
    }),
  );
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xdsBootstrap(nlb.xds!.address, 'mpctl-test');
  controller = new grpc.Server();
  controller.addService(ModuleServiceService, {
    getStatus: (
      _call: grpc.ServerUnaryCall<GetStatusRequest, GetStatusResponse>,
      cb: grpc.sendUnaryData<GetStatusResponse>,
    ) =>
      cb(
        null,
        GetStatusResponse.fromPartial({
          instance: { version: '1.0' },
          message: 'fake ALB controller via xDS',
        }),
      ),
  });
  const port = await new Promise<number>((resolve, reject) =>
    controller.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  controllerAddress = `127.0.0.1:${port}`;
  nlb.nlb.register(spec({ instanceId: 'alb-1', address: controllerAddress }), [], 'HEALTHY');
});

afterAll(async () => {
  delete process.env.GRPC_XDS_BOOTSTRAP_CONFIG;
  await new Promise<void>((r) => controller?.tryShutdown(() => r()));
  await nlb?.stop();
});

describe('mpctl with xds:/// targets', () => {
  it('--nlb xds:///nlb reaches the NLB through its own xDS export', async () => {
    const res = await mpctl(['modules', 'list', '--nlb', 'xds:///nlb', '--json', '--timeout', '10s']);
    expect(exitCodeOf(res), res.stderr).toBe(0);
    expect(res.stdout).toContain('alb-1');
  });

  it('--address xds:///alb reaches an ALB controller picked by the NLB', async () => {
    const res = await mpctl(['module', 'status', '--address', 'xds:///alb', '--json', '--timeout', '10s']);
    expect(exitCodeOf(res), res.stderr).toBe(0);
    expect(res.stdout).toContain('fake ALB controller via xDS');
  });

  it('refuses a malformed xds target as a usage error', async () => {
    const res = await mpctl(['status', '--nlb', 'xds://host/alb']);
    expect(exitCodeOf(res)).toBe(2);
  });
});
