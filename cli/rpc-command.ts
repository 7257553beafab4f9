/**
 * The base of commands that wrap contract RPCs. Each such command declares the RPC it wraps
 * (`static rpc = 'marchproxy.<Service>/<Method>'`, the main one when it calls several), builds
 * the request as protobuf JSON from its flags, and calls one of the helpers here: callNlb /
 * streamNlb go to --nlb, callModule / streamModule to a module controller, whose address
 * resolveModuleAddress finds through the NLB's registry unless --address names it.
 */
import { join } from 'node:path';
import { Flags } from '@oclif/core';
import {
  addressEndpoint,
  addressFlag,
  BaseCommand,
  nlbEndpoint,
  type ConnectionFlags,
  type Endpoint,
} from './base-command.js';
import { CliFailure, ExitCode, usageFailure } from './exit-codes.js';
import { outputFlags, useColor } from './output.js';
import type { RequestSchema } from './request-schema.js';
import { callServerStream, callUnary, requestFromJson, type StreamStop } from './rpc-call.js';
import { findRpc, type RpcMethod } from './rpc-registry.js';

/** Module types as users type them. */
export const MODULE_TYPES = ['alb', 'dblb', 'ailb', 'rtmp'] as const;
export type ModuleTypeName = (typeof MODULE_TYPES)[number];

/** "alb" → "MODULE_TYPE_ALB". */
export function moduleTypeEnum(name: string): string {
  return `MODULE_TYPE_${name.toUpperCase()}`;
}

/** Flags that pick a module controller: reuse them in module commands. */
export const moduleFlags = {
  module: Flags.string({
    description: 'Module type; its controller is looked up in the NLB registry',
    options: [...MODULE_TYPES],
  }),
  version: Flags.string({
    description: 'Module version (blue/green unit), e.g. 1.0; needed when several versions run',
  }),
  address: addressFlag({
    description: 'Module controller (ModuleService) host:port; skips the registry lookup',
  }),
  instance: Flags.string({ description: 'Instance id, e.g. alb-1' }),
};

/** What picks a module controller. */
export interface ModuleSelector {
  module?: string;
  version?: string;
  address?: string;
  /** Resolve through this instance's controller. */
  instance?: string;
}

/** The flags every RpcCommand has: connection flags and --color/--no-color. */
export type RpcFlags = ConnectionFlags & { color?: boolean };

/** Options of the stream helpers. */
export interface StreamOptions {
  maxMessages?: number;
  durationMs?: number;
  /** Cancels the stream when it aborts (besides Ctrl-C), e.g. when a TUI unmounts. */
  signal?: AbortSignal;
  onMessage(json: unknown): void;
}

/** A registered instance as ListModules returns it (protobuf JSON). */
export interface InstanceJson {
  instanceId?: string;
  moduleType?: string;
  address?: string;
  healthStatus?: string;
  version?: string;
  [key: string]: unknown;
}

const LIST_PAGE_SIZE = 1000;

export abstract class RpcCommand extends BaseCommand {
  static override baseFlags = { ...BaseCommand.baseFlags, ...outputFlags };

  /** Whether human output may use colour (see output.ts useColor). */
  protected color(flags: { color?: boolean }): boolean {
    return useColor(flags);
  }

  /** Calls NLBService/<method> with `request` (protobuf JSON); resolves to the response JSON. */
  protected callNlb<T = Record<string, unknown>>(
    flags: ConnectionFlags,
    method: string,
    request: unknown,
    source?: string,
  ): Promise<T> {
    return this.unary<T>(flags, `marchproxy.NLBService/${method}`, nlbEndpoint(flags.nlb), request, source);
  }

  /** Calls ModuleService/<method> on the controller at `address`. */
  protected callModule<T = Record<string, unknown>>(
    flags: ConnectionFlags,
    address: string,
    method: string,
    request: unknown,
    source?: string,
  ): Promise<T> {
    return this.unary<T>(
      flags,
      `marchproxy.ModuleService/${method}`,
      addressEndpoint(address),
      request,
      source,
    );
  }

  /** Streams NLBService/<method> until the server ends it, a limit is hit, or Ctrl-C. */
  protected streamNlb(
    flags: ConnectionFlags,
    method: string,
    request: unknown,
    options: StreamOptions,
  ): Promise<{ messages: number; stop: StreamStop }> {
    return this.stream(flags, `marchproxy.NLBService/${method}`, nlbEndpoint(flags.nlb), request, options);
  }

  /** Streams ModuleService/<method> from the controller at `address`. */
  protected streamModule(
    flags: ConnectionFlags,
    address: string,
    method: string,
    request: unknown,
    options: StreamOptions,
  ): Promise<{ messages: number; stop: StreamStop }> {
    return this.stream(
      flags,
      `marchproxy.ModuleService/${method}`,
      addressEndpoint(address),
      request,
      options,
    );
  }

  /** Every registered instance matching `moduleType` ("MODULE_TYPE_ALB", or all), all pages. */
  protected async listAllInstances(flags: ConnectionFlags, moduleType?: string): Promise<InstanceJson[]> {
    const all: InstanceJson[] = [];
    for (let page = 1; ; page++) {
      const res = await this.callNlb<{ modules?: InstanceJson[]; pagination?: { totalPages?: number } }>(
        flags,
        'ListModules',
        {
          moduleTypeFilter: moduleType ?? 'MODULE_TYPE_UNSPECIFIED',
          query: { pagination: { page, pageSize: LIST_PAGE_SIZE } },
        },
      );
      all.push(...(res.modules ?? []));
      if (page >= (res.pagination?.totalPages ?? 1)) return all;
    }
  }

  /**
   * The controller (ModuleService host:port) a module command talks to. --address wins;
   * --instance uses that instance's controller; otherwise the NLB's registry is asked for the
   * module type's instances: with --version that version's controller, without it the only
   * version there is. Several versions without --version is a usage error listing them; no
   * instance is a not-found error (exit 3).
   */
  protected async resolveModuleAddress(flags: ConnectionFlags, selector: ModuleSelector): Promise<string> {
    if (selector.address) return selector.address;
    const at = `the NLB at ${flags.nlb}`;
    if (!selector.module && !selector.instance) {
      throw usageFailure(
        `say which module: --module ${MODULE_TYPES.join('|')} (with --version when several run), --instance <id>, or --address host:port`,
      );
    }
    const typeEnum = selector.module ? moduleTypeEnum(selector.module) : undefined;
    const label = selector.module ? selector.module.toUpperCase() : 'module';
    let instances = await this.listAllInstances(flags, typeEnum);
    if (selector.instance) {
      instances = instances.filter((i) => i.instanceId === selector.instance);
      if (instances.length === 0) {
        throw new CliFailure(
          `no ${selector.module ? `${label} ` : ''}instance ${selector.instance} is registered with ${at}; \`mpctl modules list\` shows the registered ones`,
          ExitCode.notFound,
          'NOT_FOUND',
        );
      }
    }
    if (instances.length === 0) {
      const type = selector.module ?? 'alb';
      throw new CliFailure(
        `no ${label} instance is registered with ${at}; start one with \`mpctl serve module ${type} --version ${selector.version ?? '1.0'}\``,
        ExitCode.notFound,
        'NOT_FOUND',
      );
    }
    const byVersion = controllersByVersion(instances);
    const listing = () =>
      [...byVersion]
        .map(([version, addresses]) => `${version || '(none)'} at ${[...addresses].join(', ')}`)
        .join('; ');
    let addresses: Set<string> | undefined;
    if (selector.version !== undefined) {
      addresses = byVersion.get(selector.version);
      if (!addresses) {
        throw new CliFailure(
          `no ${label} instance of version ${selector.version} is registered with ${at}; registered: ${listing()}`,
          ExitCode.notFound,
          'NOT_FOUND',
        );
      }
    } else if (byVersion.size === 1) {
      addresses = [...byVersion.values()][0];
    } else {
      throw usageFailure(`${label} runs several versions (${listing()}); pass --version or --address`);
    }
    if (addresses.size === 0) {
      throw new CliFailure(
        `${label} instances registered with ${at} name no controller address; pass --address`,
        ExitCode.notFound,
        'NOT_FOUND',
      );
    }
    if (addresses.size > 1) {
      throw usageFailure(
        `${label}${selector.version ? ` version ${selector.version}` : ''} has several controllers (${[...addresses].join(', ')}); pass --address`,
      );
    }
    return [...addresses][0];
  }

  private async unary<T>(
    flags: ConnectionFlags,
    rpcName: string,
    endpoint: Endpoint,
    request: unknown,
    source: string | undefined,
  ): Promise<T> {
    const rpc = findRpc(rpcName);
    const decoded = await this.decode(rpc, request, source);
    const { conn, target } = this.connect(flags, endpoint, rpc.fullName);
    return (await callUnary({ conn, rpc, request: decoded, target, timeoutMs: flags.timeout })) as T;
  }

  private async stream(
    flags: ConnectionFlags,
    rpcName: string,
    endpoint: Endpoint,
    request: unknown,
    options: StreamOptions,
  ): Promise<{ messages: number; stop: StreamStop }> {
    const rpc = findRpc(rpcName);
    const decoded = await this.decode(rpc, request, undefined);
    const { conn, target } = this.connect(flags, endpoint, rpc.fullName);
    const { signal: own, ...rest } = options;
    return this.untilInterrupted((interrupted) =>
      callServerStream({
        conn,
        rpc,
        request: decoded,
        target,
        signal: own ? AbortSignal.any([interrupted, own]) : interrupted,
        ...rest,
      }),
    );
  }

  /**
   * Checks the request JSON against the contract (a usage failure naming `source`), then
   * decodes it. Fields whose value is undefined are dropped first.
   *
   * The check parses the .proto files (protobufjs, about a sixth of a command's startup), so
   * it runs where it catches something: on JSON the user supplied (`source` names it), and on
   * every request outside production (mpctl from source, tests), where it guards the commands'
   * own request building. Flag-built requests in production were covered by those runs.
   */
  private async decode(rpc: RpcMethod, request: unknown, source: string | undefined): Promise<unknown> {
    // Flags not given are undefined: leave those fields out (they take their defaults).
    const json = JSON.parse(JSON.stringify(request ?? {})) as unknown;
    if (source !== undefined || !isProduction()) {
      const problems = (await this.schema())?.check(rpc.requestType, json) ?? [];
      if (problems.length > 0) throw usageFailure(`${source ?? 'the request'}: ${problems.join('; ')}`);
    }
    return requestFromJson(rpc, json, undefined);
  }

  private async schema(): Promise<RequestSchema | undefined> {
    try {
      const { loadRequestSchema } = await import('./request-schema.js');
      return loadRequestSchema(join(this.config.root, 'proto'));
    } catch {
      return undefined;
    }
  }
}

/** oclif's rule: production unless NODE_ENV is development (bin/dev.js) or test (vitest). */
function isProduction(): boolean {
  return !['development', 'test'].includes(process.env.NODE_ENV ?? '');
}

/** Distinct controller addresses per version, in registration order. */
export function controllersByVersion(instances: readonly InstanceJson[]): Map<string, Set<string>> {
  const map = new Map<string, Set<string>>();
  for (const instance of instances) {
    const version = instance.version ?? '';
    let set = map.get(version);
    if (!set) map.set(version, (set = new Set()));
    if (instance.address) set.add(instance.address);
  }
  return map;
}

// ---------------------------------------------------------------------------------------------
// Added for the module and blue/green commands: picking the module type when --module is omitted,
// and any controller of a type (blue/green RPCs act on the whole type through the NLB).
// ---------------------------------------------------------------------------------------------

/** "MODULE_TYPE_ALB" → "alb"; undefined for types mpctl's module commands do not address. */
function typeNameOf(instance: InstanceJson): ModuleTypeName | undefined {
  const name = (instance.moduleType ?? '').replace(/^MODULE_TYPE_/, '').toLowerCase();
  return (MODULE_TYPES as readonly string[]).includes(name) ? (name as ModuleTypeName) : undefined;
}

/**
 * The module type to use when --module is omitted: the only type that has `version` registered,
 * or, without a version, the only type registered at all. None is a not-found failure (exit 3)
 * naming what is registered; several is a usage failure (exit 2) listing them.
 */
export function inferModuleType(
  instances: readonly InstanceJson[],
  version: string | undefined,
  nlbAddress: string,
): ModuleTypeName {
  const versionsByType = new Map<ModuleTypeName, Set<string>>();
  for (const instance of instances) {
    const type = typeNameOf(instance);
    if (!type) continue;
    let versions = versionsByType.get(type);
    if (!versions) versionsByType.set(type, (versions = new Set()));
    versions.add(instance.version ?? '');
  }
  const candidates = [...versionsByType]
    .filter(([, versions]) => version === undefined || versions.has(version))
    .map(([type]) => type);
  if (candidates.length === 1) return candidates[0];
  const listing = [...versionsByType]
    .map(([type, versions]) => `${type} ${[...versions].map((v) => v || '(none)').join(', ')}`)
    .join('; ');
  if (candidates.length === 0) {
    throw new CliFailure(
      versionsByType.size === 0
        ? `no module is registered with the NLB at ${nlbAddress}; start one with \`mpctl serve module alb --version ${version ?? '1.0'}\``
        : `no module of version ${version} is registered with the NLB at ${nlbAddress}; registered: ${listing}`,
      ExitCode.notFound,
      'NOT_FOUND',
    );
  }
  throw usageFailure(
    `${version === undefined ? 'several module types are registered' : `version ${version} runs in several module types`} (${listing}); pass --module ${candidates.join('|')}`,
  );
}

/**
 * A controller address of one module type (`instances` are that type's): the controller of
 * `preferVersion` when one is registered, else any, healthy instances first. Blue/green RPCs
 * are carried out by the NLB for the whole type, so any of its controllers can take them.
 */
export function pickTypeController(
  instances: readonly InstanceJson[],
  preferVersion: string | undefined,
  label: string,
  nlbAddress: string,
): string {
  const withAddress = instances.filter((i) => i.address);
  const preferred = withAddress.filter((i) => preferVersion !== undefined && i.version === preferVersion);
  const pool = preferred.length > 0 ? preferred : withAddress;
  const healthy = pool.find((i) => i.healthStatus === 'HEALTH_STATUS_HEALTHY');
  const picked = healthy ?? pool[0];
  if (!picked?.address) {
    throw new CliFailure(
      `no ${label} controller is registered with the NLB at ${nlbAddress}; start one with \`mpctl serve module ${label.toLowerCase()} --version ${preferVersion ?? '1.0'}\``,
      ExitCode.notFound,
      'NOT_FOUND',
    );
  }
  return picked.address;
}
