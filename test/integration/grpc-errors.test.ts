import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetModuleInfoRequest, UpdateNLBConfigRequest } from '../../proto/gen/marchproxy/nlb.js';
import { StatusCode } from '../../proto/gen/marchproxy/types.js';
import { ERROR_KINDS, type ErrorKind } from '../../services/shared/errors.js';
import { unaryCall } from '../../services/shared/grpc/client.js';
import { GRPC_STATUS_BY_KIND, STATUS_CODE_BY_KIND } from '../../services/shared/grpc/error-edge.js';
import { memoryLogger } from '../../services/shared/logger.js';
import { CRASH, createHarness, INTERNAL_SECRET, rejectionOf } from './grpc-fixture.js';

// One server for the whole file: these tests only read.
const h = createHarness();
const logger = memoryLogger();
let client: ReturnType<typeof h.nlbClient>;
beforeAll(async () => {
  const { target } = await h.startServer({ logger });
  client = h.nlbClient({ target });
});
afterAll(() => h.closeAll());

const moduleInfo = (instanceId: string) =>
  unaryCall(client, 'getModuleInfo', GetModuleInfoRequest.fromPartial({ instanceId }));
const updateConfig = (configType: string) =>
  unaryCall(client, 'updateNlbConfig', UpdateNLBConfigRequest.fromPartial({ config: { configType } }));

const EXPECTED_GRPC: Record<ErrorKind, grpc.status> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  already_exists: grpc.status.ALREADY_EXISTS,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  permission_denied: grpc.status.PERMISSION_DENIED,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  unavailable: grpc.status.UNAVAILABLE,
  deadline_exceeded: grpc.status.DEADLINE_EXCEEDED,
  internal: grpc.status.INTERNAL,
};

describe('DomainError over the wire', () => {
  it('the mapping table is the one this test expects', () => {
    expect(GRPC_STATUS_BY_KIND).toEqual(EXPECTED_GRPC);
  });

  it.each(ERROR_KINDS.map((k) => [k]))(
    '%s becomes its gRPC status, with the message and details',
    async (kind) => {
      const err = await rejectionOf(moduleInfo(kind));
      expect(err.code).toBe(EXPECTED_GRPC[kind]);
      expect(err.details).toBe(`instance ${kind} failed: try again with a real id`);
      expect(err.metadata.get('mp-field')).toEqual(['instance_id']);
    },
  );

  it('an envelope RPC reports a domain failure inside the response under OK', async () => {
    const res = await updateConfig('not_found');
    expect(res.success).toBe(false);
    expect(res.message).toBe('instance not_found failed: try again with a real id');
    expect(res.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    expect(res.error?.code).toBe(STATUS_CODE_BY_KIND.not_found);
    expect(res.error?.details).toMatchObject({ kind: 'not_found', field: 'instance_id' });
    expect(res.error?.occurredAt).toBeInstanceOf(Date);
  });

  it('an envelope RPC still sends authentication failures as gRPC statuses', async () => {
    expect((await rejectionOf(updateConfig('permission_denied'))).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await rejectionOf(updateConfig('unauthenticated'))).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('an envelope RPC reports success as is', async () => {
    expect(await updateConfig('ok')).toMatchObject({ success: true, message: 'applied' });
  });

  it.each([
    ['unary', () => moduleInfo(CRASH)],
    ['envelope', () => updateConfig(CRASH)],
  ])('an unexpected throw in a %s RPC is INTERNAL with a reference, never the cause', async (_what, call) => {
    const err = await rejectionOf(call());
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).toMatch(/^internal error \(ref [0-9a-f]{8}\); the server log has the details$/);
    expect(err.details).not.toContain('hunter2');
    const ref = /ref ([0-9a-f]{8})/.exec(err.details)![1];
    const logged = logger.lines.find(
      (l) => l.msg === 'unexpected error in RPC handler' && l.fields?.ref === ref,
    );
    expect(JSON.stringify(logged?.fields)).toContain(INTERNAL_SECRET);
  });
});
