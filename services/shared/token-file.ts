/**
 * Tokens from a file, rotatable without a restart (DESIGN.md §7). The file is YAML or JSON:
 *
 *   tokens:
 *     - { name: ops, role: admin, token: "…" }
 *     - name: alb-controller
 *       role: module
 *       token: "…"
 *       scope: { instances: ["alb-*"], moduleTypes: [alb], maxRegistrations: 50 }
 *   anonymousRead: false
 *
 * The server re-reads it when it changes (polled every couple of seconds) and on SIGHUP. A file
 * that does not parse or validate is refused as a whole: the log says what is wrong (never a
 * token) and the previous tokens stay in force. Rotate by adding the new token under a new name,
 * moving clients over, then removing the old one.
 */
import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  authConfigProblems,
  createAuthenticator,
  ROLES,
  type AuthConfig,
  type Authenticator,
  type TokenEntry,
} from './auth.js';
import { invalidArgument } from './errors.js';
import type { Logger } from './logger.js';

const FILE_SCHEMA = z
  .object({
    tokens: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            role: z.enum(ROLES as [string, ...string[]]),
            token: z.string().min(16, 'a token needs at least 16 characters'),
            scope: z
              .object({
                instances: z.array(z.string()).max(256).optional(),
                moduleTypes: z.array(z.string()).max(4).optional(),
                maxRegistrations: z.number().int().min(0).max(1_000_000).optional(),
              })
              .strict()
              .optional(),
          })
          .strict(),
      )
      .max(1000),
    anonymousRead: z.boolean().optional(),
  })
  .strict();

/**
 * Parses a token file's text. Throws an invalid_argument DomainError naming the file and every
 * problem; messages never contain a token value.
 */
export function parseTokenFile(
  text: string,
  path: string,
): { tokens: TokenEntry[]; anonymousRead?: boolean } {
  let raw: unknown;
  try {
    raw = parseYaml(text, { maxAliasCount: 16 });
  } catch (e) {
    throw invalidArgument(`${path}: not YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  const parsed = FILE_SCHEMA.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw invalidArgument(`${path}: ${problems.join('; ')}`);
  }
  const tokens = parsed.data.tokens as TokenEntry[];
  const problems = authConfigProblems({ enabled: true, tokens });
  if (problems.length) throw invalidArgument(`${path}: ${problems.join('; ')}`);
  return { tokens, anonymousRead: parsed.data.anonymousRead };
}

export interface AuthSetup {
  /** Tokens given directly (flags/env): always in force, next to the file's. */
  tokens: TokenEntry[];
  tokensFile?: string;
  anonymousRead: boolean;
  /** How often the file is checked for changes. */
  pollMs?: number;
}

export interface LiveAuth {
  /** Undefined when no token is configured at all: auth is off. */
  auth: Authenticator | undefined;
  /** Re-reads the token file now; resolves whether the new tokens were installed. */
  reload(): boolean;
  stop(): void;
}

/**
 * Builds the authenticator a server enforces, from direct tokens and a token file, and keeps it
 * current as the file changes. Throws (a clear invalid_argument) when the file is unusable at
 * start: a server must not come up with fewer tokens than its operator meant.
 */
export function createLiveAuth(setup: AuthSetup, logger: Logger): LiveAuth {
  const build = (): AuthConfig => {
    const file = setup.tokensFile ? readTokenFile(setup.tokensFile) : undefined;
    return {
      enabled: true,
      tokens: [...setup.tokens, ...(file?.tokens ?? [])],
      anonymousRead: file?.anonymousRead ?? setup.anonymousRead,
    };
  };
  const initial = build();
  if (!setup.tokensFile && initial.tokens.length === 0)
    return { auth: undefined, reload: () => false, stop() {} };
  const auth = createAuthenticator(initial);
  const path = setup.tokensFile;
  if (!path) return { auth, reload: () => false, stop() {} };

  const reload = (): boolean => {
    try {
      auth.update(build());
      logger.info('tokens reloaded', { file: path });
      return true;
    } catch (e) {
      logger.error('token file refused; the previous tokens stay in force', {
        file: path,
        error: (e as Error).message,
      });
      return false;
    }
  };
  const onChange = (cur: { mtimeMs: number; size: number }, prev: { mtimeMs: number; size: number }) => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) reload();
  };
  watchFile(path, { interval: setup.pollMs ?? 2000, persistent: false }, onChange);
  const onHup = () => void reload();
  process.on('SIGHUP', onHup);
  return {
    auth,
    reload,
    stop() {
      unwatchFile(path, onChange);
      process.off('SIGHUP', onHup);
    },
  };
}

function readTokenFile(path: string): { tokens: TokenEntry[]; anonymousRead?: boolean } {
  let text: string;
  try {
    if (statSync(path).size > 1024 * 1024) throw new Error('larger than 1 MiB');
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw invalidArgument(
      `cannot read token file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check auth.tokensFile`,
    );
  }
  return parseTokenFile(text, path);
}
