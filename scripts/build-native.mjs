#!/usr/bin/env node
/**
 * Builds the NLB's native relay (native/relay/relay.c → native/relay/build/relay.node) with the
 * machine's C compiler against Node's own headers: no node-gyp, no download. Part of
 * `npm run build`. Skipped when the output is newer than the source.
 *
 * A machine without a compiler or without Node's headers still builds and runs: the data plane
 * then forwards in JavaScript (`dataplane.relay: auto`), and this script says what to install.
 * With MP_NATIVE_REQUIRED=1 (CI) a failed build is an error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'native/relay/relay.c');
const outDir = join(root, 'native/relay/build');
const out = join(outDir, 'relay.node');
const required = process.env.MP_NATIVE_REQUIRED === '1';

function fail(message) {
  // A stale build must not be loaded in place of the source that failed to compile.
  rmSync(out, { force: true });
  const lines = [
    `native relay not built: ${message}`,
    'The NLB will forward connections in JavaScript (slower; docs/dataplane.md "Native relay").',
    'To build it: apt-get install -y gcc libc6-dev (and Node headers: the nodejs package or the',
    'official Node.js tarball have them), then npm run build.',
  ];
  process.stderr.write(lines.map((l) => `[build-native] ${l}\n`).join(''));
  process.exit(required ? 1 : 0);
}

if (process.platform !== 'linux') fail(`the relay uses epoll (Linux only); this is ${process.platform}`);

if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs && process.argv[2] !== '--force')
  process.exit(0);

// Node's headers: next to this node binary (tarball and Debian layouts), or npm's nodedir.
const candidates = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  process.env.npm_config_nodedir ? join(process.env.npm_config_nodedir, 'include', 'node') : '',
  '/usr/include/node',
  '/usr/local/include/node',
].filter(Boolean);
const include = candidates.find((d) => existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')));
if (!include) fail(`Node's headers (node_api.h, uv.h) not found in ${candidates.join(', ')}`);

const cc = process.env.CC || 'cc';
mkdirSync(outDir, { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const args = [
  '-O2',
  '-g',
  '-std=gnu11',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-fPIC',
  '-shared',
  '-fvisibility=hidden',
  '-DNAPI_VERSION=8',
  `-I${include}`,
  src,
  '-o',
  tmp,
];
const r = spawnSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
if (r.error) fail(`${cc}: ${r.error.code === 'ENOENT' ? 'not installed' : r.error.message}`);
if (r.status !== 0) fail(`${cc} exited with ${r.status}`);
renameSync(tmp, out);
