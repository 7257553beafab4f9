/**
 * Every RPC of the contract, built from the generated grpc-js service definitions (no hand
 * list): full name → definition entry plus the generated request/response message functions.
 */
import * as moduleProto from '../proto/gen/marchproxy/module.js';
import * as nlbProto from '../proto/gen/marchproxy/nlb.js';
import { usageFailure } from './exit-codes.js';
import { closestMatches, didYouMean } from './suggest.js';

/** The generated JSON/binary functions of one message (ts-proto's MessageFns). */
export type MessageFns = nlbProto.MessageFns<unknown>;

/** The parts of a generated grpc-js method definition mpctl uses. */
export interface RpcDefinition {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

/** How an RPC streams. */
export type RpcKind = 'unary' | 'server-streaming' | 'client-streaming' | 'bidi-streaming';

/** One RPC of the contract. */
export interface RpcMethod {
  /** "marchproxy.NLBService/GetNLBStatus" */
  readonly fullName: string;
  /** "marchproxy.NLBService" */
  readonly service: string;
  /** "GetNLBStatus" */
  readonly method: string;
  readonly kind: RpcKind;
  readonly definition: RpcDefinition;
  /** Protobuf type names, e.g. "marchproxy.GetNLBStatusRequest". */
  readonly requestType: string;
  readonly responseType: string;
  readonly request: MessageFns;
  readonly response: MessageFns;
}

type GeneratedModule = Readonly<Record<string, unknown>>;

function messageFns(module: GeneratedModule, name: string, rpc: string): MessageFns {
  const fns = module[name] as Partial<MessageFns> | undefined;
  if (typeof fns?.fromJSON !== 'function' || typeof fns.toJSON !== 'function') {
    // The generated code and the registry disagree: a codegen change, not a user error.
    throw new Error(`generated code has no message ${name} for ${rpc}`);
  }
  return fns as MessageFns;
}

function kindOf(def: RpcDefinition): RpcKind {
  if (def.requestStream) return def.responseStream ? 'bidi-streaming' : 'client-streaming';
  return def.responseStream ? 'server-streaming' : 'unary';
}

function methodsOf(
  definitions: Readonly<Record<string, RpcDefinition>>,
  module: GeneratedModule,
): RpcMethod[] {
  return Object.values(definitions).map((definition) => {
    const [service, method] = definition.path.slice(1).split('/');
    const pkg = service.slice(0, service.lastIndexOf('.'));
    const fullName = `${service}/${method}`;
    return {
      fullName,
      service,
      method,
      kind: kindOf(definition),
      definition,
      requestType: `${pkg}.${method}Request`,
      responseType: `${pkg}.${method}Response`,
      request: messageFns(module, `${method}Request`, fullName),
      response: messageFns(module, `${method}Response`, fullName),
    };
  });
}

const RPCS: ReadonlyMap<string, RpcMethod> = new Map(
  [
    ...methodsOf(nlbProto.NLBServiceService, nlbProto as GeneratedModule),
    ...methodsOf(moduleProto.ModuleServiceService, moduleProto as GeneratedModule),
  ].map((rpc) => [rpc.fullName, rpc]),
);

/** All RPCs, in contract order (NLBService first). */
export function listRpcs(): RpcMethod[] {
  return [...RPCS.values()];
}

/**
 * Canonical "package.Service/Method" for the spellings people use:
 * "/marchproxy.NLBService/GetNLBStatus", "NLBService/GetNLBStatus", "NLBService.GetNLBStatus".
 */
export function canonicalRpcName(input: string): string {
  const name = input.trim().replace(/^\/+/, '');
  const cut = name.includes('/') ? name.lastIndexOf('/') : name.lastIndexOf('.');
  if (cut <= 0) return name;
  const service = name.slice(0, cut);
  const method = name.slice(cut + 1);
  return `${service.includes('.') ? service : `marchproxy.${service}`}/${method}`;
}

/** The RPC named `input`; a usage failure listing close matches when there is none. */
export function findRpc(input: string): RpcMethod {
  const found = RPCS.get(canonicalRpcName(input));
  if (found) return found;
  const typedMethod = input.trim().split(/[/.]/).at(-1) ?? input;
  const matches = closestMatches(typedMethod, [...RPCS.keys()], 3, (full) => full.split('/')[1]);
  const hint = didYouMean(matches) || ' nothing close;';
  throw usageFailure(`unknown RPC "${input}";${hint} \`mpctl call --list\` lists all ${RPCS.size}`);
}
