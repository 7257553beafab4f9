import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../services/shared/auth.js';
import { serverStreamCall, unaryCall } from '../../services/shared/grpc/client.js';
import { memoryLogger, silentLogger } from '../../services/shared/logger.js';
import { HeartbeatRequest, UpdateNLBConfigRequest } from '../../proto/gen/marchproxy/nlb.js';
import { AUTH_CONFIG, createHarness, rejectionOf, TOKENS } from './grpc-fixture.js';

const h = createHarness();
afterEach(() => h.closeAll());

async function authServer(config = AUTH_CONFIG, logger = silentLogger()) {
  const auth = createAuthenticator(config);
  return { auth, ...(await h.startServer({ auth, logger })) };
}

const status = (client: ReturnType<typeof h.nlbClient>, metadata?: grpc.Metadata) =>
  unaryCall(client, 'getNlbStatus', { includeModules: false }, { metadata });

const updateConfig = (client: ReturnType<typeof h.nlbClient>) =>
  unaryCall(client, 'updateNlbConfig', UpdateNLBConfigRequest.fromPartial({ config: { configType: 'ok' } }));

const heartbeat = HeartbeatRequest.fromPartial({ instanceId: 'i-1', registrationId: 'r-1' });

describe('gRPC authentication', () => {
  it('refuses a call without a token with UNAUTHENTICATED and says how to pass one', async () => {
    const { target } = await authServer();
    const err = await rejectionOf(status(h.nlbClient({ target })));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toBe('missing bearer token: pass --token or set MPCTL_TOKEN');
  });

  it('refuses a wrong token with UNAUTHENTICATED, and logs it, without echoing the token', async () => {
    const logger = memoryLogger();
    const { target } = await authServer(AUTH_CONFIG, logger);
    const err = await rejectionOf(status(h.nlbClient({ target, token: 'guessed-token-123' })));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toContain('token not recognised');
    expect(err.details).not.toContain('guessed-token-123');
    const line = logger.lines.find((l) => l.msg === 'rpc' && l.fields?.code === 'UNAUTHENTICATED');
    expect(line?.fields).toMatchObject({ method: '/marchproxy.NLBService/GetNLBStatus' });
    expect(JSON.stringify(logger.lines)).not.toContain('guessed-token-123');
  });

  it('refuses a read token on an admin RPC with PERMISSION_DENIED naming both roles', async () => {
    const { target } = await authServer();
    const err = await rejectionOf(updateConfig(h.nlbClient({ target, token: TOKENS.read })));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe(
      "role 'read' (token 'viewer') may not call /marchproxy.NLBService/UpdateNLBConfig; needs 'admin'",
    );
  });

  it('refuses a module token on admin RPCs, implemented or not', async () => {
    const { target } = await authServer();
    const client = h.nlbClient({ target, token: TOKENS.module });
    expect((await rejectionOf(updateConfig(client))).code).toBe(grpc.status.PERMISSION_DENIED);
    const rebalance = unaryCall(client, 'rebalanceLoad', { force: true, targetInstances: [], strategy: '' });
    expect((await rejectionOf(rebalance)).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('lets module and admin tokens through to module RPCs (the test service leaves them unimplemented)', async () => {
    const { target } = await authServer();
    for (const token of [TOKENS.module, TOKENS.admin]) {
      const call = unaryCall(h.nlbClient({ target, token }), 'heartbeat', heartbeat);
      expect((await rejectionOf(call)).code).toBe(grpc.status.UNIMPLEMENTED);
    }
    const asReader = unaryCall(h.nlbClient({ target, token: TOKENS.read }), 'heartbeat', heartbeat);
    expect((await rejectionOf(asReader)).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('passes a correct token and gives the handler its principal, not the credentials', async () => {
    const { target } = await authServer();
    const res = await status(h.nlbClient({ target, token: TOKENS.read }));
    expect(res.version).toBe('1.2.3');
    expect(res.details).toEqual({ principal: 'viewer', authorizationSeen: '0' });
    const admin = await updateConfig(h.nlbClient({ target, token: TOKENS.admin }));
    expect(admin).toMatchObject({ success: true, message: 'applied' });
  });

  it('ignores a principal the client puts in metadata', async () => {
    const { target } = await authServer();
    const spoof = new grpc.Metadata();
    spoof.set('x-mp-principal', 'ops');
    const res = await status(h.nlbClient({ target, token: TOKENS.read }), spoof);
    expect(res.details.principal).toBe('viewer');
  });

  it('ignores a spoofed principal when auth is off too', async () => {
    const { target } = await h.startServer();
    const spoof = new grpc.Metadata();
    spoof.set('x-mp-principal', 'ops');
    const res = await status(h.nlbClient({ target }), spoof);
    expect(res.details.principal).toBe('anonymous');
  });

  it('authenticates server-streaming calls', async () => {
    const { target } = await authServer();
    const request = { intervalSeconds: 0, metricNames: ['finite'], includeModules: false };
    const denied = serverStreamCall(h.nlbClient({ target }), 'streamNlbMetrics', request);
    const err = await rejectionOf(denied.next());
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);

    const seen: string[] = [];
    for await (const msg of serverStreamCall(
      h.nlbClient({ target, token: TOKENS.read }),
      'streamNlbMetrics',
      request,
    )) {
      seen.push(`${msg.metrics[0].value}:${msg.metrics[0].labels.principal}`);
    }
    expect(seen).toEqual(['0:viewer', '1:viewer', '2:viewer']);
  });

  it('applies a rotated token set to new calls without a restart', async () => {
    const { auth, target } = await authServer();
    const oldClient = h.nlbClient({ target, token: TOKENS.read });
    await status(oldClient);

    auth.update({
      enabled: true,
      tokens: [{ name: 'viewer-2', role: 'read', token: 'rd-rotated-7c1e9a3b' }],
    });

    expect((await rejectionOf(status(oldClient))).code).toBe(grpc.status.UNAUTHENTICATED);
    const res = await status(h.nlbClient({ target, token: 'rd-rotated-7c1e9a3b' }));
    expect(res.details.principal).toBe('viewer-2');
  });

  it('keeps the old tokens when a rotation is invalid', async () => {
    const { auth, target } = await authServer();
    expect(() => auth.update({ enabled: true, tokens: [{ name: 'x', role: 'read', token: '' }] })).toThrow(
      /token 'x' is empty/,
    );
    const res = await status(h.nlbClient({ target, token: TOKENS.read }));
    expect(res.details.principal).toBe('viewer');
  });

  it('with anonymousRead, allows reads without a token but nothing else', async () => {
    const { target } = await authServer({ ...AUTH_CONFIG, anonymousRead: true });
    const anonymous = h.nlbClient({ target });
    expect((await status(anonymous)).details.principal).toBe('anonymous');
    expect((await rejectionOf(updateConfig(anonymous))).code).toBe(grpc.status.UNAUTHENTICATED);
    // A token that is sent must still be valid.
    const wrong = h.nlbClient({ target, token: 'not-a-token-4711' });
    expect((await rejectionOf(status(wrong))).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('without anonymousRead, refuses reads without a token', async () => {
    const { target } = await authServer({ ...AUTH_CONFIG, anonymousRead: false });
    expect((await rejectionOf(status(h.nlbClient({ target })))).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('refuses a non-bearer authorization header', async () => {
    const { target } = await authServer();
    const md = new grpc.Metadata();
    md.set('authorization', `Basic ${TOKENS.admin}`);
    const err = await rejectionOf(status(h.nlbClient({ target }), md));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toContain("send 'authorization: Bearer <token>'");
    expect(err.details).not.toContain(TOKENS.admin);
  });
});
