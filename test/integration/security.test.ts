/**
 * The security suite (issue 12): every RPC of the real NLB and the real module controller
 * refuses calls without a token, with a wrong token and with a too-weak role; module tokens act
 * only on their own instances, inside their scope and their registration limit; a rotated token
 * file applies without a restart, and a broken one changes nothing. (TLS with a wrong CA:
 * grpc-tls.test.ts.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModuleServiceService } from '../../proto/gen/marchproxy/module.js';
import { NLBServiceService } from '../../proto/gen/marchproxy/nlb.js';
import { METHOD_ROLES, roleAllows, ROLES, type Role } from '../../services/shared/auth.js';
import { createClientConnection, createNlbClient } from '../../services/shared/grpc/client.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { moduleProcessSchema, startModule, type ModuleHandle } from '../../services/modules/runtime/main.js';
import { instance, ModuleType, rejectionOf, route, rpcOf, waitFor, type Rpc } from './nlb-fixture.js';
import { memoryLogger } from '../../services/shared/logger.js';

const TOKENS: Record<Role, string> = {
  admin: 'admin-token-0123456789abcdef',
  module: 'module-token-0123456789abcdef',
  read: 'read-token-0123456789abcdef01',
};
const ALB_TOKEN = 'alb-controller-token-0123456789';
const DBLB_TOKEN = 'dblb-controller-token-012345678';
const WRONG = 'not-a-token-anyone-was-given-00';

function tokenFile(albToken = ALB_TOKEN): string {
  return JSON.stringify({
    tokens: [
      {
        name: 'alb-controller',
        role: 'module',
        token: albToken,
        scope: { instances: ['alb-*'], moduleTypes: ['alb'] },
      },
      {
        name: 'dblb-controller',
        role: 'module',
        token: DBLB_TOKEN,
        scope: { instances: ['dblb-*'], moduleTypes: ['dblb'], maxRegistrations: 2 },
      },
    ],
  });
}

let dir: string;
let nlb: NlbHandle;
let mod: ModuleHandle;
/** A second controller for the role matrix, which ends by shutting it down. */
let matrixMod: ModuleHandle;
let nlbTarget: string;
const clients: grpc.Client[] = [];
/** The NLB's log (the token-rotation test waits for its refusal of a broken file). */
const nlbLog = memoryLogger();

function nlbAs(token: string | undefined): Rpc {
  const client = createNlbClient(createClientConnection({ target: nlbTarget, token, timeoutMs: 5000 }));
  clients.push(client);
  return rpcOf(client);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mp-security-'));
  writeFileSync(join(dir, 'tokens.json'), tokenFile(), { mode: 0o600 });
  nlb = await startNlb(
    nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      dataDir: '',
      logLevel: 'silent',
      seed: 3,
      auth: {
        adminToken: TOKENS.admin,
        moduleToken: TOKENS.module,
        readToken: TOKENS.read,
        tokensFile: join(dir, 'tokens.json'),
      },
      modules: { token: TOKENS.admin },
    }),
    { logger: nlbLog },
  );
  nlbTarget = `127.0.0.1:${nlb.grpcPort}`;
  mod = await startModule(
    moduleProcessSchema.parse({
      type: 'alb',
      version: '1.0',
      instances: 1,
      grpc: { host: '127.0.0.1', port: 0 },
      nlb: nlbTarget,
      provider: 'inprocess',
      dataDir: dir,
      logLevel: 'silent',
      heartbeatIntervalSeconds: 1,
      nlbToken: ALB_TOKEN,
      auth: { adminToken: TOKENS.admin, readToken: TOKENS.read },
    }),
  );
  matrixMod = await startModule(
    moduleProcessSchema.parse({
      type: 'ailb',
      version: '1.0',
      instances: 1,
      grpc: { host: '127.0.0.1', port: 0 },
      nlb: nlbTarget,
      provider: 'inprocess',
      dataDir: join(dir, 'matrix'),
      logLevel: 'silent',
      heartbeatIntervalSeconds: 1,
      nlbToken: TOKENS.module,
      auth: { adminToken: TOKENS.admin, readToken: TOKENS.read },
    }),
  );
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await mod?.stop(false).catch(() => undefined);
  await matrixMod?.stop(false).catch(() => undefined);
  await nlb?.stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

/** Calls `path` with an empty request and resolves the status code (OK = 0). */
function callRaw(
  target: string,
  path: string,
  streaming: boolean,
  token: string | undefined,
): Promise<number> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  const id = (b: Buffer) => b;
  const deadline = Date.now() + 5000;
  return new Promise<number>((resolve) => {
    const done = (code: number) => {
      client.close();
      resolve(code);
    };
    if (streaming) {
      const call = client.makeServerStreamRequest(path, id, id, Buffer.alloc(0), metadata, { deadline });
      // The first message proves the call got past auth; cancel and count it as OK.
      call.on('data', () => {
        call.cancel();
        done(grpc.status.OK);
      });
      call.on('error', (e: grpc.ServiceError) => done(e.code));
      call.on('end', () => done(grpc.status.OK));
    } else {
      client.makeUnaryRequest(path, id, id, Buffer.alloc(0), metadata, { deadline }, (e) =>
        done(e ? e.code : grpc.status.OK),
      );
    }
  });
}

const METHODS = [
  ...Object.values(NLBServiceService).map((m) => ({
    path: m.path,
    streaming: m.responseStream,
    target: 'nlb',
  })),
  ...Object.values(ModuleServiceService).map((m) => ({
    path: m.path,
    streaming: m.responseStream,
    target: 'module',
  })),
  // Shutdown last: an admin's Shutdown stops the controller.
].sort((a, b) => Number(a.path.endsWith('/Shutdown')) - Number(b.path.endsWith('/Shutdown')));

describe('every RPC', () => {
  const targetOf = (t: string) => (t === 'nlb' ? nlbTarget : matrixMod.address);

  it('has a role policy (46 RPCs)', () => {
    expect(METHODS).toHaveLength(46);
    for (const m of METHODS) expect(Object.hasOwn(METHOD_ROLES, m.path), m.path).toBe(true);
  });

  it.each(METHODS)('$path refuses a missing and a wrong token with UNAUTHENTICATED', async (m) => {
    expect(await callRaw(targetOf(m.target), m.path, m.streaming, undefined)).toBe(
      grpc.status.UNAUTHENTICATED,
    );
    expect(await callRaw(targetOf(m.target), m.path, m.streaming, WRONG)).toBe(grpc.status.UNAUTHENTICATED);
  });

  it.each(METHODS)(
    '$path refuses weaker roles with PERMISSION_DENIED and lets allowed roles through',
    async (m) => {
      const needed = METHOD_ROLES[m.path];
      // Module controllers accept admin and read tokens only; the module role exists on the NLB.
      const roles = ROLES.filter((r) => m.target === 'nlb' || r !== 'module');
      for (const role of roles) {
        const code = await callRaw(targetOf(m.target), m.path, m.streaming, TOKENS[role]);
        if (role === 'module' && m.path.endsWith('/UpdateRouting')) {
          // Past auth, but a module token without source_instance_id would change operator routes.
          expect(code).toBe(grpc.status.PERMISSION_DENIED);
        } else if (roleAllows(role, needed))
          expect(
            [grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED],
            `${role} on ${m.path}`,
          ).not.toContain(code);
        else expect(code, `${role} on ${m.path}`).toBe(grpc.status.PERMISSION_DENIED);
      }
    },
  );
});

const spec = (instanceId: string, moduleType: ModuleType) => ({
  instance: instance(instanceId, '127.0.0.1:9', { moduleType }),
});

describe('module tokens', () => {
  it('the controller registered its instance with its own scoped token', async () => {
    const admin = nlbAs(TOKENS.admin);
    const ids = await waitFor('the controller to register its instance', async () => {
      const r = await admin('listModules', {});
      const albs = r.modules.filter((x) => x.moduleType === ModuleType.MODULE_TYPE_ALB);
      return albs.length === 1 ? albs.map((x) => x.instanceId) : undefined;
    });
    expect(ids[0]).toMatch(/^alb-/);
  });

  it('cannot unregister, heartbeat for, report for or re-route another token’s instance', async () => {
    const alb = nlbAs(ALB_TOKEN);
    const reg = await alb('registerModule', spec('alb-victim', ModuleType.MODULE_TYPE_ALB));
    expect(reg.success).toBe(true);
    for (const other of [nlbAs(DBLB_TOKEN), nlbAs(TOKENS.module)]) {
      const tries: Array<Promise<unknown>> = [
        other('unregisterModule', { instanceId: 'alb-victim', registrationId: reg.registrationId }),
        other('heartbeat', { instanceId: 'alb-victim', registrationId: reg.registrationId }),
        other('reportMetrics', { instanceId: 'alb-victim', metrics: { metrics: [] } }),
        other('updateRouting', {
          sourceInstanceId: 'alb-victim',
          routes: [route({ routeId: 'hijack', destinationPattern: '*' })],
        }),
        other('registerModule', spec('alb-victim', ModuleType.MODULE_TYPE_ALB)),
      ];
      for (const t of tries) {
        const e = await rejectionOf(t);
        expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
      }
    }
    const e = await rejectionOf(nlbAs(TOKENS.module)('unregisterModule', { instanceId: 'alb-victim' }));
    expect(e.details).toContain("token 'alb-controller' registered it");
    // Still there, and its owner and an admin may act on it.
    const admin = nlbAs(TOKENS.admin);
    expect((await admin('getModuleInfo', { instanceId: 'alb-victim' })).instance?.instanceId).toBe(
      'alb-victim',
    );
    expect(
      (await alb('heartbeat', { instanceId: 'alb-victim', registrationId: reg.registrationId })).acknowledged,
    ).toBe(true);
    expect(
      (await admin('unregisterModule', { instanceId: 'alb-victim', registrationId: reg.registrationId }))
        .success,
    ).toBe(true);
  });

  it('registers only inside its scope of instance ids and module types', async () => {
    const alb = nlbAs(ALB_TOKEN);
    const outside = await rejectionOf(alb('registerModule', spec('dblb-1', ModuleType.MODULE_TYPE_DBLB)));
    expect(outside.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(outside.details).toContain('alb-*');
    const wrongType = await rejectionOf(alb('registerModule', spec('alb-x', ModuleType.MODULE_TYPE_DBLB)));
    expect(wrongType.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(wrongType.details).toContain('dblb');
    const dep = await rejectionOf(
      alb('updateDeployment', {
        moduleType: ModuleType.MODULE_TYPE_DBLB,
        action: 1,
        version: '1.0',
        weight: 50,
      }),
    );
    expect(dep.code).toBe(grpc.status.PERMISSION_DENIED);
    const list = await nlbAs(TOKENS.admin)('listModules', {});
    expect(list.modules.map((m) => m.instanceId)).not.toContain('dblb-1');
  });

  it('may not change operator routes', async () => {
    const e = await rejectionOf(
      nlbAs(TOKENS.module)('updateRouting', {
        routes: [route({ routeId: 'op', destinationPattern: '*', moduleType: 'ALB' })],
      }),
    );
    expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(e.details).toContain('source_instance_id');
  });

  it('stops at its registration limit, counted in /metrics, and frees a slot on unregister', async () => {
    const dblb = nlbAs(DBLB_TOKEN);
    const a = await dblb('registerModule', spec('dblb-a', ModuleType.MODULE_TYPE_DBLB));
    await dblb('registerModule', spec('dblb-b', ModuleType.MODULE_TYPE_DBLB));
    const full = await dblb('registerModule', spec('dblb-c', ModuleType.MODULE_TYPE_DBLB));
    expect(full.success).toBe(false);
    expect(full.error?.message).toContain('already has 2 registered instances');
    // Re-registering an instance it holds is not a new registration.
    expect((await dblb('registerModule', spec('dblb-a', ModuleType.MODULE_TYPE_DBLB))).success).toBe(true);
    const metrics = await (await fetch(`http://127.0.0.1:${nlb.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/mp_nlb_limit_hits_total\{limit="registrations_per_token"\} 1\b/);
    await dblb('unregisterModule', { instanceId: 'dblb-a', registrationId: a.registrationId });
    expect((await dblb('registerModule', spec('dblb-c', ModuleType.MODULE_TYPE_DBLB))).success).toBe(true);
  });
});

describe('token rotation', () => {
  it('applies a rewritten token file without a restart, and keeps the old tokens when the file is broken', async () => {
    const path = join(dir, 'tokens.json');
    const NEW = 'alb-controller-token-rotated-01';
    writeFileSync(path, tokenFile(NEW), { mode: 0o600 });
    await waitFor(
      'the old token to be refused',
      async () => {
        const e = await rejectionOf(nlbAs(ALB_TOKEN)('listModules', {})).catch(() => undefined);
        return e?.code === grpc.status.UNAUTHENTICATED ? true : undefined;
      },
      15_000,
    );
    expect((await nlbAs(NEW)('listModules', {})).modules.length).toBeGreaterThan(0);
    // A broken file (a token too short, a bad role) is refused as a whole.
    writeFileSync(path, JSON.stringify({ tokens: [{ name: 'x', role: 'root', token: 'short' }] }), {
      mode: 0o600,
    });
    await waitFor(
      'the broken file to be read and refused',
      () => nlbLog.lines.some((l) => l.msg === 'token file refused; the previous tokens stay in force'),
      15_000,
    );
    expect((await nlbAs(NEW)('listModules', {})).modules.length).toBeGreaterThan(0);
    expect((await nlbAs(DBLB_TOKEN)('listModules', {})).modules.length).toBeGreaterThan(0);
  }, 30_000);
});
