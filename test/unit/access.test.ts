import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { instanceInScope } from '../../services/shared/auth.js';
import { createManualClock } from '../../services/shared/clock.js';
import { createLogger, memoryLogger } from '../../services/shared/logger.js';
import { createRng } from '../../services/shared/rng.js';
import { createLiveAuth, parseTokenFile } from '../../services/shared/token-file.js';
import { InstanceOwners, type Caller, type LimitHit } from '../../services/nlb/domain/access.js';
import { Nlb } from '../../services/nlb/nlb.js';
import { LIMIT_LOG_EVERY_MS } from '../../services/shared/limit-log.js';
import type { ModulePort } from '../../services/nlb/ports.js';
import { createMemoryStatePort } from '../../services/nlb/store.js';

const alb: Caller = {
  principal: 'alb',
  role: 'module',
  scope: { instances: ['alb-*', 'edge'], moduleTypes: ['alb'] },
};
const other: Caller = { principal: 'other', role: 'module' };
const admin: Caller = { principal: 'ops', role: 'admin' };

const kindOf = (f: () => void) => {
  try {
    f();
  } catch (e) {
    return (e as { kind?: string }).kind;
  }
  return 'ok';
};

describe('instance scopes', () => {
  it('match exact ids and trailing-* prefixes only', () => {
    expect(instanceInScope(alb.scope, 'alb-1')).toBe(true);
    expect(instanceInScope(alb.scope, 'edge')).toBe(true);
    expect(instanceInScope(alb.scope, 'edge-2')).toBe(false);
    expect(instanceInScope(alb.scope, 'xalb-1')).toBe(false);
    expect(instanceInScope(undefined, 'anything')).toBe(true);
  });
});

describe('InstanceOwners', () => {
  it('lets a module token register in scope only, and an admin anything', () => {
    const o = new InstanceOwners();
    expect(kindOf(() => o.checkRegister(alb, 'alb-1', 'alb', 10))).toBe('ok');
    expect(kindOf(() => o.checkRegister(alb, 'dblb-1', 'alb', 10))).toBe('permission_denied');
    expect(kindOf(() => o.checkRegister(alb, 'alb-1', 'dblb', 10))).toBe('permission_denied');
    expect(kindOf(() => o.checkRegister(admin, 'dblb-1', 'dblb', 10))).toBe('ok');
  });

  it('binds an instance to the token that registered it until it is released', () => {
    const o = new InstanceOwners();
    o.claim('alb-1', 'alb');
    expect(kindOf(() => o.checkAct(other, 'alb-1', 'unregister'))).toBe('permission_denied');
    expect(kindOf(() => o.checkRegister(other, 'alb-1', 'alb', 10))).toBe('permission_denied');
    expect(kindOf(() => o.checkAct(alb, 'alb-1', 'unregister'))).toBe('ok');
    expect(kindOf(() => o.checkAct(admin, 'alb-1', 'unregister'))).toBe('ok');
    o.release('alb-1');
    expect(o.ownerOf('alb-1')).toBeUndefined();
    expect(kindOf(() => o.checkRegister(other, 'alb-1', 'alb', 10))).toBe('ok');
  });

  it('counts live registrations per token against the limit, re-registrations excepted', () => {
    const o = new InstanceOwners();
    const hits: LimitHit[] = [];
    o.claim('alb-1', 'alb');
    o.claim('alb-2', 'alb');
    expect(kindOf(() => o.checkRegister(alb, 'alb-3', 'alb', 2, (h) => hits.push(h)))).toBe(
      'resource_exhausted',
    );
    expect(hits).toEqual([{ limit: 'registrations_per_token', message: expect.stringContaining('limit') }]);
    expect(kindOf(() => o.checkRegister(alb, 'alb-2', 'alb', 2))).toBe('ok');
    // A token's own maxRegistrations overrides the NLB-wide limit.
    const tight: Caller = { ...alb, scope: { ...alb.scope, maxRegistrations: 1 } };
    expect(kindOf(() => o.checkRegister(tight, 'alb-3', 'alb', 100))).toBe('resource_exhausted');
    o.release('alb-1');
    expect(o.countOf('alb')).toBe(1);
    expect(kindOf(() => o.checkRegister(alb, 'alb-3', 'alb', 2))).toBe('ok');
  });

  it('moves ownership when an admin re-registers, keeping counts right', () => {
    const o = new InstanceOwners();
    o.claim('alb-1', 'alb');
    o.claim('alb-1', 'ops');
    expect(o.countOf('alb')).toBe(0);
    expect(o.countOf('ops')).toBe(1);
  });
});

describe('token files', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const file = (text: string) => {
    const d = mkdtempSync(join(tmpdir(), 'mp-tokens-'));
    dirs.push(d);
    writeFileSync(join(d, 'tokens.yaml'), text);
    return join(d, 'tokens.yaml');
  };
  const good = 'tokens:\n  - { name: ops, role: admin, token: "0123456789abcdef0123" }\n';

  it('parses YAML with scopes', () => {
    const t = parseTokenFile(
      `${good}  - name: alb\n    role: module\n    token: "abcdefabcdefabcdef00"\n    scope: { instances: ["alb-*"], moduleTypes: [alb] }\n`,
      'tokens.yaml',
    );
    expect(t.tokens.map((x) => x.name)).toEqual(['ops', 'alb']);
    expect(t.tokens[1].scope?.instances).toEqual(['alb-*']);
  });

  it.each([
    ['tokens: [', 'not YAML or JSON'],
    ['tokens:\n  - { name: ops, role: root, token: "0123456789abcdef0123" }\n', 'tokens.0.role'],
    ['tokens:\n  - { name: ops, role: admin, token: "short" }\n', 'at least 16 characters'],
    [
      `${good}  - { name: ops, role: read, token: "zzzzzzzzzzzzzzzzzzzz" }\n`,
      "token name 'ops' is used twice",
    ],
    [
      'tokens:\n  - { name: r, role: read, token: "0123456789abcdef0123", scope: { instances: ["a"] } }\n',
      'only module tokens take one',
    ],
    [
      'tokens:\n  - { name: m, role: module, token: "0123456789abcdef0123", scope: { moduleTypes: [web] } }\n',
      "module type 'web'",
    ],
  ])('refuses %j naming the problem, never a token', (text, problem) => {
    let message = '';
    try {
      parseTokenFile(text, 'tokens.yaml');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('tokens.yaml');
    expect(message).toContain(problem);
    expect(message).not.toContain('0123456789abcdef0123');
  });

  it('reloads on demand and keeps the old tokens when the new file is broken', () => {
    const path = file(good);
    const live = createLiveAuth(
      { tokens: [], tokensFile: path, anonymousRead: false },
      createLogger({ level: 'silent' }),
    );
    try {
      const ok = (t: string) =>
        live.auth!.authenticate(`Bearer ${t}`, '/marchproxy.NLBService/ListModules').ok;
      expect(ok('0123456789abcdef0123')).toBe(true);
      writeFileSync(path, 'tokens:\n  - { name: ops2, role: admin, token: "fedcba9876543210fedc" }\n');
      expect(live.reload()).toBe(true);
      expect(ok('0123456789abcdef0123')).toBe(false);
      expect(ok('fedcba9876543210fedc')).toBe(true);
      writeFileSync(path, 'tokens: [');
      expect(live.reload()).toBe(false);
      expect(ok('fedcba9876543210fedc')).toBe(true);
    } finally {
      live.stop();
    }
  });

  it('refuses to start on an unreadable file, naming it', () => {
    expect(() =>
      createLiveAuth(
        { tokens: [], tokensFile: '/nonexistent/tokens.yaml', anonymousRead: false },
        createLogger({ level: 'silent' }),
      ),
    ).toThrow(/cannot read token file \/nonexistent\/tokens.yaml: ENOENT/);
  });
});

describe('Nlb.noteLimit', () => {
  it('counts every hit, emits an event each time, and logs at most one line per limit per 10 s', () => {
    const clock = createManualClock(0);
    const logger = memoryLogger();
    const lines = logger.lines;
    const nlb = new Nlb({
      clock,
      rng: createRng('limits'),
      logger,
      state: createMemoryStatePort(),
      modules: {} as ModulePort,
      version: '0.0.0-test',
    });
    const events: string[] = [];
    nlb.on((e) => {
      if (e.type === 'limit') events.push(e.limit);
    });
    for (let i = 0; i < 50; i++) nlb.noteLimit({ limit: 'client_connections', message: 'full' });
    nlb.noteLimit({ limit: 'routes', message: 'too many routes' });
    expect(nlb.limitHits.get('client_connections')).toBe(50);
    expect(events).toHaveLength(51);
    expect(lines.map((l) => l.fields?.limit)).toEqual(['client_connections', 'routes']);

    clock.advance(LIMIT_LOG_EVERY_MS);
    nlb.noteLimit({ limit: 'client_connections', message: 'full' });
    expect(lines).toHaveLength(3);
    expect(lines[2]).toEqual({
      level: 'warn',
      msg: 'limit reached',
      fields: { limit: 'client_connections', error: 'full', unlogged: 49 },
    });
  });
});
