/**
 * mpctl's config file: where the NLB is and how to reach it (token, TLS files), so that
 * commands need no flags. `mpctl dev` writes one for the local stack. Settings are taken, per
 * setting, from the flag, else the environment (MPCTL_NLB, MPCTL_TOKEN), else this file, else
 * the built-in default. The file is found at --config / MPCTL_CONFIG, else
 * ./.mpctl-data/mpctl.json (a local stack started in this directory), else
 * $XDG_CONFIG_HOME/mpctl/config.json (~/.config/mpctl/config.json).
 *
 * The file describes one NLB: when --nlb or MPCTL_NLB names another address, the file is not
 * used at all, so that its token is never sent to a server it was not meant for.
 *
 * Only node:fs/path/os here: every command loads this (docs/mpctl.md, startup time).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';

/** The file as written (JSON). Relative paths are relative to the file's directory. */
export interface MpctlConfigFile {
  /** NLB gRPC host:port. */
  nlb?: string;
  /** A bearer token, or a file holding one (a file is easier to keep private and to rotate). */
  token?: string;
  tokenFile?: string;
  tls?: {
    /** PEM CA that signed the servers' certificates (system roots when absent). */
    ca?: string;
    /** PEM client certificate and key for mutual TLS. */
    cert?: string;
    key?: string;
    /** Name expected in the server certificate when it differs from the host. */
    serverName?: string;
  };
}

/** A loaded config file with paths resolved and the token read. */
export interface MpctlConfig {
  path: string;
  nlb?: string;
  token?: string;
  tls?: { ca?: string; cert?: string; key?: string; serverName?: string };
}

/** Where the local stack in the current directory writes its config file. */
export const LOCAL_CONFIG_FILE = join('.mpctl-data', 'mpctl.json');

export const CONFIG_FORMAT_HINT = 'see "Config file" in docs/mpctl.md';

/** A config file that cannot be used; the message names the file, the problem and the fix. */
export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
}

export interface ConfigLocation {
  path: string;
  /** Named by --config or MPCTL_CONFIG (then it must exist). */
  explicit: boolean;
  /** How it was found, for messages. */
  source: string;
}

/** Which config file applies, or undefined when there is none. */
export function findConfigFile(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): ConfigLocation | undefined {
  if (flag) return { path: resolve(cwd, flag), explicit: true, source: '--config' };
  if (env.MPCTL_CONFIG)
    return { path: resolve(cwd, env.MPCTL_CONFIG), explicit: true, source: 'MPCTL_CONFIG' };
  const local = resolve(cwd, LOCAL_CONFIG_FILE);
  if (existsSync(local)) return { path: local, explicit: false, source: 'the local stack in this directory' };
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  const user = join(base, 'mpctl', 'config.json');
  if (existsSync(user)) return { path: user, explicit: false, source: 'the user config' };
  return undefined;
}

const KNOWN = new Set(['nlb', 'token', 'tokenFile', 'tls']);
const KNOWN_TLS = new Set(['ca', 'cert', 'key', 'serverName']);

function problemsOf(raw: unknown): string[] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return ['it must be a JSON object like {"nlb": "127.0.0.1:50050", "tokenFile": "auth/admin.token"}'];
  const o = raw as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(o))
    if (!KNOWN.has(k)) problems.push(`unknown key "${k}" (known: ${[...KNOWN].join(', ')})`);
  for (const k of ['nlb', 'token', 'tokenFile'])
    if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === ''))
      problems.push(`"${k}" must be a non-empty string`);
  if (typeof o.nlb === 'string' && o.nlb && !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/.test(o.nlb))
    problems.push(`"nlb" must be host:port, got "${o.nlb}"`);
  if (o.token !== undefined && o.tokenFile !== undefined)
    problems.push('give "token" or "tokenFile", not both');
  if (o.tls !== undefined) {
    if (typeof o.tls !== 'object' || o.tls === null || Array.isArray(o.tls))
      problems.push('"tls" must be an object like {"ca": "certs/ca.crt", "cert": "…", "key": "…"}');
    else {
      const t = o.tls as Record<string, unknown>;
      for (const [k, v] of Object.entries(t)) {
        if (!KNOWN_TLS.has(k)) problems.push(`unknown key "tls.${k}" (known: ${[...KNOWN_TLS].join(', ')})`);
        else if (typeof v !== 'string' || v === '') problems.push(`"tls.${k}" must be a non-empty string`);
      }
      if ((t.cert === undefined) !== (t.key === undefined))
        problems.push('"tls.cert" and "tls.key" go together (mutual TLS needs both)');
    }
  }
  return problems;
}

function readText(path: string, what: string, where: ConfigLocation): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new ConfigFileError(
      `config file ${where.path}: cannot read ${what} ${path} (${code})${fixHint(where)}`,
    );
  }
}

function fixHint(where: ConfigLocation): string {
  return where.explicit
    ? `; fix it, or point ${where.source} at another file (${CONFIG_FORMAT_HINT})`
    : `; fix or delete it (found as ${where.source}; ${CONFIG_FORMAT_HINT}), or pass --config`;
}

/** Reads and checks the config file at `where`; throws a ConfigFileError saying what to fix. */
export function loadConfigFile(where: ConfigLocation): MpctlConfig {
  if (!existsSync(where.path))
    throw new ConfigFileError(
      `config file ${where.path} (from ${where.source}) does not exist: create it (${CONFIG_FORMAT_HINT}) or unset ${where.source}`,
    );
  if (statSync(where.path).isDirectory())
    throw new ConfigFileError(`config file ${where.path} is a directory: name the JSON file itself`);
  let raw: unknown;
  try {
    raw = JSON.parse(readText(where.path, 'the file', where));
  } catch (e) {
    if (e instanceof ConfigFileError) throw e;
    throw new ConfigFileError(
      `config file ${where.path} is not valid JSON (${(e as Error).message})${fixHint(where)}`,
    );
  }
  const problems = problemsOf(raw);
  if (problems.length)
    throw new ConfigFileError(`config file ${where.path}: ${problems.join('; ')}${fixHint(where)}`);
  const file = raw as MpctlConfigFile;
  const base = dirname(where.path);
  const at = (p: string | undefined) => (p === undefined ? undefined : isAbsolute(p) ? p : join(base, p));
  const tls = file.tls && {
    ca: at(file.tls.ca),
    cert: at(file.tls.cert),
    key: at(file.tls.key),
    serverName: file.tls.serverName,
  };
  for (const [k, p] of Object.entries(tls ?? {}))
    if (k !== 'serverName' && p !== undefined && !existsSync(p))
      throw new ConfigFileError(`config file ${where.path}: tls.${k} ${p} does not exist${fixHint(where)}`);
  let token = file.token;
  if (file.tokenFile) {
    token = readText(at(file.tokenFile)!, 'tokenFile', where).trim();
    if (!token)
      throw new ConfigFileError(
        `config file ${where.path}: tokenFile ${at(file.tokenFile)} is empty${fixHint(where)}`,
      );
  }
  return { path: where.path, nlb: file.nlb, token, tls };
}

/** The connection settings a command resolved, as flags. */
export interface ConnectionSettings {
  nlb: string;
  token?: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  'tls-server-name'?: string;
}

/** Which connection settings came from the command line or the environment. */
export interface GivenSettings {
  nlb: boolean;
  token: boolean;
  tls: boolean;
}

/** "localhost:50050" and "127.0.0.1:50050" are the same NLB; so are differently cased hosts. */
export function sameAddress(a: string, b: string): boolean {
  const norm = (s: string) =>
    s
      .trim()
      .toLowerCase()
      .replace(/^localhost:/, '127.0.0.1:')
      .replace(/^\[::1\]:/, '127.0.0.1:');
  return norm(a) === norm(b);
}

/**
 * Fills the settings that were not given from `config`, in place. Does nothing when the
 * config names another NLB than the one given. Returns whether the file was used.
 */
export function applyConfig(
  settings: ConnectionSettings,
  given: GivenSettings,
  config: MpctlConfig,
): boolean {
  if (given.nlb && config.nlb && !sameAddress(settings.nlb, config.nlb)) return false;
  if (!given.nlb && config.nlb) settings.nlb = config.nlb;
  if (!given.token && config.token) settings.token = config.token;
  if (!given.tls && config.tls) {
    settings.tls = true;
    settings.ca = config.tls.ca;
    settings.cert = config.tls.cert;
    settings.key = config.tls.key;
    settings['tls-server-name'] = config.tls.serverName;
  }
  return true;
}
