/**
 * Finds the shipped .proto sources and loads them as a proto-loader package definition, for
 * server reflection (grpcurl, Postman) and for tests that need descriptors at run time.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';

/** The contract files, relative to the proto directory. */
export const MARCHPROXY_PROTO_FILES: readonly string[] = [
  'marchproxy/types.proto',
  'marchproxy/nlb.proto',
  'marchproxy/module.proto',
];

/**
 * The repository's `proto` directory: the nearest ancestor of this file that holds
 * package.json. Works from source (tsx, vitest) and from dist/, which mirrors the repo root.
 */
export function protoDir(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto', 'marchproxy'))) {
      return join(dir, 'proto');
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the proto directory above ${dirname(from)}`);
    dir = parent;
  }
}

let cached: PackageDefinition | undefined;

/** The marchproxy package definition (loaded once; google/protobuf types come with protobufjs). */
export function marchproxyPackageDefinition(): PackageDefinition {
  cached ??= loadSync([...MARCHPROXY_PROTO_FILES], { includeDirs: [protoDir()] });
  return cached;
}
