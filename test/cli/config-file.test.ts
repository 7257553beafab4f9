/**
 * mpctl's config file: where it is found, what a broken one says, and the precedence
 * flag > env > file > default against a real NLB with authentication on.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  applyConfig,
  findConfigFile,
  loadConfigFile,
  type ConnectionSettings,
} from '../../cli/mpctl-config.js';
import { ensureLocalTokens, writeLocalConfig } from '../../cli/local-stack-auth.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { exitCodeOf, mpctl } from './support/oclif.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'mpctl-config-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const write = (name: string, content: unknown) => {
  const path = join(root, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
};

describe('finding the config file', () => {
  it('takes --config, then MPCTL_CONFIG, then ./.mpctl-data/mpctl.json, then the XDG one', () => {
    const cwd = join(root, 'project');
    const xdg = join(root, 'xdg');
    const env = { XDG_CONFIG_HOME: xdg };
    expect(findConfigFile(undefined, env, cwd)).toBeUndefined();
    const user = write('xdg/mpctl/config.json', {});
    expect(findConfigFile(undefined, env, cwd)).toMatchObject({ path: user, explicit: false });
    const local = write('project/.mpctl-data/mpctl.json', {});
    expect(findConfigFile(undefined, env, cwd)).toMatchObject({ path: local, explicit: false });
    expect(findConfigFile(undefined, { ...env, MPCTL_CONFIG: 'a.json' }, cwd)).toMatchObject({
      path: join(cwd, 'a.json'),
      explicit: true,
      source: 'MPCTL_CONFIG',
    });
    expect(findConfigFile('b.json', { ...env, MPCTL_CONFIG: 'a.json' }, cwd)).toMatchObject({
      path: join(cwd, 'b.json'),
      source: '--config',
    });
  });
});

describe('a broken config file', () => {
  const load = (path: string) => () => loadConfigFile({ path, explicit: true, source: '--config' });

  it('names the file, what is wrong and how to fix it', () => {
    expect(load(join(root, 'absent.json'))).toThrow(/absent\.json \(from --config\) does not exist/);
    expect(load(write('bad.json', '{"nlb": '))).toThrow(
      /bad\.json is not valid JSON .*fix it, or point --config/,
    );
    expect(load(write('keys.json', { nlb: 'x', tokn: 'y' }))).toThrow(
      /unknown key "tokn".*"nlb" must be host:port, got "x"/,
    );
    expect(load(write('both.json', { token: 'a', tokenFile: 'b' }))).toThrow(
      /"token" or "tokenFile", not both/,
    );
    expect(load(write('tls.json', { tls: { cert: 'c.pem' } }))).toThrow(
      /"tls.cert" and "tls.key" go together/,
    );
    expect(load(write('ca.json', { tls: { ca: 'nope.crt' } }))).toThrow(/tls.ca .*nope\.crt does not exist/);
    expect(load(write('tf.json', { tokenFile: 'missing.token' }))).toThrow(/cannot read tokenFile .*ENOENT/);
  });

  it('resolves relative paths against its own directory and reads the token file', () => {
    write('dir/auth/admin.token', 'secret-token-value-123\n');
    write('dir/certs/ca.crt', 'x');
    const c = loadConfigFile({
      path: write('dir/mpctl.json', {
        nlb: '127.0.0.1:1',
        tokenFile: 'auth/admin.token',
        tls: { ca: 'certs/ca.crt' },
      }),
      explicit: false,
      source: 'test',
    });
    expect(c).toMatchObject({
      nlb: '127.0.0.1:1',
      token: 'secret-token-value-123',
      tls: { ca: join(root, 'dir/certs/ca.crt') },
    });
  });
});

describe('applyConfig', () => {
  const config = { path: 'f', nlb: '127.0.0.1:50050', token: 'file-token', tls: { ca: '/ca' } };
  const settings = (s: Partial<ConnectionSettings> = {}): ConnectionSettings => ({
    nlb: '127.0.0.1:50050',
    ...s,
  });

  it('fills what was not given, and a flag or env value wins', () => {
    const s = settings();
    expect(applyConfig(s, { nlb: false, token: false, tls: false }, config)).toBe(true);
    expect(s).toMatchObject({ token: 'file-token', tls: true, ca: '/ca' });
    const given = settings({ token: 'flag-token' });
    applyConfig(given, { nlb: true, token: true, tls: false }, config);
    expect(given.token).toBe('flag-token');
  });

  it('is not used at all for another NLB, so its token goes nowhere else', () => {
    const s = settings({ nlb: '10.0.0.9:50050' });
    expect(applyConfig(s, { nlb: true, token: false, tls: false }, config)).toBe(false);
    expect(s.token).toBeUndefined();
    const same = settings({ nlb: 'localhost:50050' });
    expect(applyConfig(same, { nlb: true, token: false, tls: false }, config)).toBe(true);
  });
});

describe('mpctl with a config file against an NLB with auth on', () => {
  let nlb: NlbHandle;
  let dataDir: string;
  let file: string;
  const saved = { MPCTL_CONFIG: process.env.MPCTL_CONFIG, MPCTL_TOKEN: process.env.MPCTL_TOKEN };

  beforeAll(async () => {
    dataDir = join(root, 'stack');
    const { tokens, files } = ensureLocalTokens(dataDir);
    nlb = await startNlb(
      nlbProcessSchema.parse({
        grpc: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        dataDir: '',
        logLevel: 'silent',
        auth: { adminToken: tokens.admin, moduleToken: tokens.module, readToken: tokens.read },
      }),
    );
    file = writeLocalConfig(dataDir, { nlb: `127.0.0.1:${nlb.grpcPort}`, tokenFile: files.admin });
  });
  afterAll(async () => {
    await nlb?.stop();
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it("reaches the NLB with the file's address and token (from --config or MPCTL_CONFIG)", async () => {
    const byFlag = await mpctl(['status', '--config', file, '--json']);
    expect(exitCodeOf(byFlag), byFlag.stderr).toBe(0);
    expect(JSON.parse(byFlag.stdout)).toMatchObject({ status: expect.any(String) });
    process.env.MPCTL_CONFIG = file;
    expect(exitCodeOf(await mpctl(['modules', 'list', '--json']))).toBe(0);
  });

  it('lets MPCTL_TOKEN and --token win over the file', async () => {
    process.env.MPCTL_CONFIG = file;
    process.env.MPCTL_TOKEN = 'not-the-right-token-at-all';
    const env = await mpctl(['status']);
    expect(exitCodeOf(env)).toBe(5);
    delete process.env.MPCTL_TOKEN;
    expect(exitCodeOf(await mpctl(['status', '--token', 'another-wrong-token-value']))).toBe(5);
  });

  it('is refused without a token, and a broken file is a usage error naming it', async () => {
    const noFile = await mpctl([
      'status',
      '--nlb',
      `127.0.0.1:${nlb.grpcPort}`,
      '--config',
      write('empty.json', {}),
    ]);
    expect(exitCodeOf(noFile)).toBe(5);
    const broken = await mpctl(['status', '--config', write('broken.json', '[1, 2')]);
    expect(exitCodeOf(broken)).toBe(2);
    expect(broken.stderr).toContain(join(root, 'broken.json'));
    expect(broken.stderr).toContain('is not valid JSON');
  });
});
