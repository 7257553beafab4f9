import { describe, expect, it } from 'vitest';
import { ModuleServiceService } from '../../proto/gen/marchproxy/module.js';
import { NLBServiceService } from '../../proto/gen/marchproxy/nlb.js';
import {
  authConfigProblems,
  authenticate,
  createAuthenticator,
  isPublicMethod,
  METHOD_ROLES,
  requiredRole,
  roleAllows,
  type AuthConfig,
  type Role,
} from '../../services/shared/auth.js';

const generatedPaths = [...Object.values(NLBServiceService), ...Object.values(ModuleServiceService)]
  .map((m) => m.path as string)
  .sort();

const TOKENS = {
  admin: 'adm-token-aaaaaaaaaaaa',
  module: 'mod-token-bbbbbbbbbbbb',
  read: 'rd-token-cccccccccccc',
};
const CONFIG: AuthConfig = {
  enabled: true,
  tokens: [
    { name: 'ops', role: 'admin', token: TOKENS.admin },
    { name: 'alb-1', role: 'module', token: TOKENS.module },
    { name: 'viewer', role: 'read', token: TOKENS.read },
  ],
};
const bearer = (t: string) => `Bearer ${t}`;

const NLB = (m: string) => `/marchproxy.NLBService/${m}`;
const MOD = (m: string) => `/marchproxy.ModuleService/${m}`;

describe('METHOD_ROLES', () => {
  it('has a policy for exactly the 46 RPCs of the generated services', () => {
    expect(generatedPaths).toHaveLength(46);
    expect(Object.keys(METHOD_ROLES).sort()).toEqual(generatedPaths);
  });

  it('gives reads to read, module lifecycle to module, and everything else to admin', () => {
    const expected = (path: string): Role => {
      const name = path.split('/')[2];
      const moduleRpcs = [
        'RegisterModule',
        'UnregisterModule',
        'Heartbeat',
        'ReportMetrics',
        'UpdateRouting',
        'UpdateDeployment',
      ];
      if (path.startsWith('/marchproxy.NLBService/') && moduleRpcs.includes(name)) return 'module';
      if (/^(Get|List|Check|Validate|Stream)/.test(name)) return 'read';
      if (['CanHandle', 'HealthCheck', 'RouteRequest'].includes(name)) return 'read';
      return 'admin';
    };
    for (const path of generatedPaths) expect([path, METHOD_ROLES[path]]).toEqual([path, expected(path)]);
  });

  it('keeps operator actions at admin', () => {
    for (const path of [
      NLB('UpdateNLBConfig'),
      NLB('RebalanceLoad'),
      NLB('TriggerScaling'),
      MOD('Drain'),
      MOD('Scale'),
    ]) {
      expect(METHOD_ROLES[path]).toBe('admin');
    }
  });

  it('defaults methods without a policy to admin, including inherited object keys', () => {
    expect(requiredRole(NLB('SomethingNew'))).toBe('admin');
    expect(requiredRole('toString')).toBe('admin');
    expect(requiredRole('__proto__')).toBe('admin');
  });
});

describe('roles', () => {
  it('orders read < module < admin', () => {
    const table: Array<[Role, Role, boolean]> = [
      ['read', 'read', true],
      ['read', 'module', false],
      ['read', 'admin', false],
      ['module', 'read', true],
      ['module', 'module', true],
      ['module', 'admin', false],
      ['admin', 'read', true],
      ['admin', 'module', true],
      ['admin', 'admin', true],
    ];
    for (const [role, needed, allowed] of table)
      expect([role, needed, roleAllows(role, needed)]).toEqual([role, needed, allowed]);
  });
});

describe('authenticate', () => {
  it('refuses a missing token and says how to pass one', () => {
    expect(authenticate(CONFIG, undefined, NLB('ListModules'))).toEqual({
      ok: false,
      kind: 'unauthenticated',
      message: 'missing bearer token: pass --token or set MPCTL_TOKEN',
    });
    expect(authenticate(CONFIG, '  ', NLB('ListModules'))).toMatchObject({
      ok: false,
      kind: 'unauthenticated',
    });
  });

  it('refuses an unknown token without echoing it', () => {
    const r = authenticate(CONFIG, bearer('adm-token-aaaaaaaaaaaX'), NLB('ListModules'));
    expect(r).toMatchObject({ ok: false, kind: 'unauthenticated' });
    expect(JSON.stringify(r)).not.toContain('aaaaaaaaaaaX');
    expect(JSON.stringify(r)).toContain('token not recognised');
  });

  it('refuses a non-bearer scheme without echoing the credentials', () => {
    const r = authenticate(CONFIG, `Basic ${TOKENS.admin}`, NLB('ListModules'));
    expect(r).toMatchObject({ ok: false, kind: 'unauthenticated' });
    expect(JSON.stringify(r)).not.toContain(TOKENS.admin);
    expect(authenticate(CONFIG, TOKENS.admin, NLB('ListModules'))).toMatchObject({ ok: false });
    expect(authenticate(CONFIG, `Bearer ${TOKENS.admin} extra`, NLB('ListModules'))).toMatchObject({
      ok: false,
    });
  });

  it('accepts the scheme in any case and surrounding spaces', () => {
    expect(authenticate(CONFIG, `  bearer   ${TOKENS.read} `, NLB('ListModules'))).toEqual({
      ok: true,
      principal: 'viewer',
      role: 'read',
    });
  });

  it('authorises by role, naming the role, the method and what it needs', () => {
    expect(authenticate(CONFIG, bearer(TOKENS.read), NLB('UpdateNLBConfig'))).toEqual({
      ok: false,
      kind: 'permission_denied',
      message:
        "role 'read' (token 'viewer') may not call /marchproxy.NLBService/UpdateNLBConfig; needs 'admin'",
    });
    expect(authenticate(CONFIG, bearer(TOKENS.read), NLB('Heartbeat'))).toMatchObject({
      kind: 'permission_denied',
    });
    expect(authenticate(CONFIG, bearer(TOKENS.module), NLB('TriggerScaling'))).toMatchObject({
      kind: 'permission_denied',
    });
    expect(authenticate(CONFIG, bearer(TOKENS.module), MOD('Shutdown'))).toMatchObject({
      kind: 'permission_denied',
    });
    expect(authenticate(CONFIG, bearer(TOKENS.module), NLB('Heartbeat'))).toMatchObject({
      ok: true,
      principal: 'alb-1',
    });
    expect(authenticate(CONFIG, bearer(TOKENS.module), NLB('ListModules'))).toMatchObject({ ok: true });
    expect(authenticate(CONFIG, bearer(TOKENS.admin), NLB('Heartbeat'))).toMatchObject({
      ok: true,
      principal: 'ops',
    });
    expect(authenticate(CONFIG, bearer(TOKENS.admin), NLB('Unknown'))).toMatchObject({ ok: true });
    expect(authenticate(CONFIG, bearer(TOKENS.module), NLB('Unknown'))).toMatchObject({
      kind: 'permission_denied',
    });
  });

  it('lets everything through as anonymous admin when disabled', () => {
    const off = { ...CONFIG, enabled: false };
    expect(authenticate(off, undefined, NLB('UpdateNLBConfig'))).toEqual({
      ok: true,
      principal: 'anonymous',
      role: 'admin',
    });
  });

  it('with anonymousRead, lets tokenless reads through but nothing else', () => {
    const open = { ...CONFIG, anonymousRead: true };
    expect(authenticate(open, undefined, NLB('GetNLBStatus'))).toEqual({
      ok: true,
      principal: 'anonymous',
      role: 'read',
    });
    expect(authenticate(open, undefined, NLB('Heartbeat'))).toMatchObject({ kind: 'unauthenticated' });
    expect(authenticate(open, undefined, NLB('NotInTheTable'))).toMatchObject({ kind: 'unauthenticated' });
    expect(authenticate(open, bearer('wrong-token-zzzz'), NLB('GetNLBStatus'))).toMatchObject({
      kind: 'unauthenticated',
    });
  });

  it('always allows the health and reflection services, naming a valid caller', () => {
    for (const path of [
      '/grpc.health.v1.Health/Check',
      '/grpc.health.v1.Health/Watch',
      '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
    ]) {
      expect(isPublicMethod(path)).toBe(true);
      expect(authenticate(CONFIG, undefined, path)).toEqual({
        ok: true,
        principal: 'anonymous',
        role: 'read',
      });
      expect(authenticate(CONFIG, bearer('stale-token-1234'), path)).toMatchObject({
        ok: true,
        principal: 'anonymous',
      });
      expect(authenticate(CONFIG, bearer(TOKENS.admin), path)).toMatchObject({ ok: true, principal: 'ops' });
    }
    expect(isPublicMethod('/grpc.health.v1.HealthX/Check')).toBe(false);
    expect(isPublicMethod(NLB('CheckHealth'))).toBe(false);
  });

  it('never mentions any configured token in any refusal', () => {
    const headers = [
      undefined,
      '',
      'Basic x',
      bearer('nope-nope-nope'),
      ...Object.values(TOKENS).map(bearer),
    ];
    for (const header of headers) {
      for (const path of [...generatedPaths, NLB('Unknown')]) {
        const r = authenticate(CONFIG, header, path);
        if (r.ok) continue;
        for (const t of Object.values(TOKENS)) expect(r.message).not.toContain(t);
      }
    }
  });
});

describe('auth config validation', () => {
  it('accepts a good config', () => {
    expect(authConfigProblems(CONFIG)).toEqual([]);
  });

  it('names every problem without echoing token values', () => {
    const bad = {
      enabled: true,
      tokens: [
        { name: '', role: 'read', token: 'ok-token-1111' },
        { name: 'a', role: 'root', token: 'ok-token-2222' },
        { name: 'a', role: 'read', token: 'has space-3333' },
        { name: 'b', role: 'read', token: '' },
        { name: 'c', role: 'admin', token: 'ok-token-1111' },
      ],
    } as unknown as AuthConfig;
    const problems = authConfigProblems(bad);
    expect(problems).toEqual([
      'token #1 has no name',
      "token 'a' has role 'root'; use read, module or admin",
      "token name 'a' is used twice",
      "token 'a' must be printable ASCII without spaces",
      "token 'b' is empty",
      "token 'c' has the same value as another token",
    ]);
    expect(problems.join()).not.toMatch(/ok-token|has space/);
  });

  it('createAuthenticator refuses an invalid config with an invalid_argument DomainError', () => {
    const bad: AuthConfig = { enabled: true, tokens: [{ name: 'x', role: 'read', token: '' }] };
    expect(() => createAuthenticator(bad)).toThrow(
      expect.objectContaining({ name: 'DomainError', kind: 'invalid_argument' }),
    );
  });
});

describe('createAuthenticator', () => {
  it('swaps the whole config on update, for the next call', () => {
    const auth = createAuthenticator(CONFIG);
    expect(auth.enabled).toBe(true);
    expect(auth.authenticate(bearer(TOKENS.read), NLB('ListModules'))).toMatchObject({ ok: true });

    auth.update({
      enabled: true,
      tokens: [{ name: 'new-viewer', role: 'read', token: 'rd-rotated-000000' }],
    });
    expect(auth.authenticate(bearer(TOKENS.read), NLB('ListModules'))).toMatchObject({
      kind: 'unauthenticated',
    });
    expect(auth.authenticate(bearer('rd-rotated-000000'), NLB('ListModules'))).toMatchObject({
      principal: 'new-viewer',
    });

    auth.update({ enabled: false, tokens: [] });
    expect(auth.enabled).toBe(false);
    expect(auth.authenticate(undefined, NLB('UpdateNLBConfig'))).toMatchObject({ ok: true });
  });

  it('keeps the old config when an update is invalid', () => {
    const auth = createAuthenticator(CONFIG);
    expect(() => auth.update({ enabled: true, tokens: [{ name: '', role: 'read', token: 'x' }] })).toThrow(
      /token #1 has no name/,
    );
    expect(auth.authenticate(bearer(TOKENS.admin), NLB('UpdateNLBConfig'))).toMatchObject({ ok: true });
  });

  it('is not affected by later changes to the config object it was given', () => {
    const config: AuthConfig = {
      enabled: true,
      tokens: [{ name: 'v', role: 'read', token: 'rd-0123456789' }],
    };
    const auth = createAuthenticator(config);
    config.tokens[0].role = 'admin';
    config.tokens.push({ name: 'sneaky', role: 'admin', token: 'adm-0123456789' });
    expect(auth.authenticate(bearer('rd-0123456789'), NLB('UpdateNLBConfig'))).toMatchObject({
      kind: 'permission_denied',
    });
    expect(auth.authenticate(bearer('adm-0123456789'), NLB('ListModules'))).toMatchObject({
      kind: 'unauthenticated',
    });
  });

  it('picks the right entry whichever position it holds (every entry is compared)', () => {
    const many: AuthConfig = {
      enabled: true,
      tokens: Array.from({ length: 20 }, (_, i) => ({
        name: `t${i}`,
        role: 'read' as const,
        token: `tok-${i}-xxxxxxxx`,
      })),
    };
    const auth = createAuthenticator(many);
    for (const i of [0, 7, 19]) {
      expect(auth.authenticate(bearer(`tok-${i}-xxxxxxxx`), NLB('ListModules'))).toMatchObject({
        principal: `t${i}`,
      });
    }
  });
});
