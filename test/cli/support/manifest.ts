/**
 * Reading the oclif manifest: which contract RPCs the commands cover. Each command that wraps
 * RPCs declares `static rpc = 'marchproxy.<Service>/<Method>'` (or `static rpcs`, a list, or
 * '*' for the generic `call`), and oclif copies those statics into the manifest.
 */

/** The part of an oclif manifest this reads. */
export interface RpcManifest {
  commands: Record<string, { rpc?: unknown; rpcs?: unknown }>;
}

/**
 * The RPCs the manifest's commands declare (`rpc`, or the entries of an `rpcs` list). The
 * generic `rpcs: '*'` of `mpctl call` is not counted: it covers nothing in particular.
 */
export function rpcCoverage(manifest: RpcManifest): Set<string> {
  const covered = new Set<string>();
  for (const command of Object.values(manifest.commands)) {
    if (typeof command.rpc === 'string') covered.add(command.rpc);
    if (Array.isArray(command.rpcs)) {
      for (const rpc of command.rpcs) if (typeof rpc === 'string') covered.add(rpc);
    }
  }
  return covered;
}

/** The commands that declare each RPC, for failure messages. */
export function commandsByRpc(manifest: RpcManifest): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const [id, command] of Object.entries(manifest.commands)) {
    const rpcs = [
      ...(typeof command.rpc === 'string' ? [command.rpc] : []),
      ...(Array.isArray(command.rpcs) ? command.rpcs.filter((r): r is string => typeof r === 'string') : []),
    ];
    for (const rpc of rpcs) map.set(rpc, [...(map.get(rpc) ?? []), id]);
  }
  return map;
}
