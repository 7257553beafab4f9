import { join } from 'node:path';
import { Args, Flags } from '@oclif/core';
import {
  addressEndpoint,
  BaseCommand,
  DEFAULT_MODULE_ADDRESS,
  durationFlag,
  nlbEndpoint,
  addressFlag,
} from '../base-command.js';
import { usageFailure } from '../exit-codes.js';
import { parsePositiveInt } from '../flag-parsers.js';
import { parseRequestJson, readRequestText } from '../request-input.js';
import { loadRequestSchema, type RequestSchema } from '../request-schema.js';
import { callServerStream, callUnary, requestFromJson } from '../rpc-call.js';
import { findRpc, listRpcs, type RpcMethod } from '../rpc-registry.js';

export default class Call extends BaseCommand {
  static override summary = 'Invoke any NLBService or ModuleService RPC with a JSON request, like grpcurl.';
  static override description = `The request is protobuf JSON (field names in snake_case or camelCase) and is checked against the contract before it is sent: unknown fields, wrong types and unknown enum values are usage errors (exit 2). Unary responses are printed as pretty JSON; server-streaming RPCs print one JSON object per line (NDJSON) until the server ends the stream, --max-messages or --duration is reached, or Ctrl-C.

NLBService calls go to --nlb (MPCTL_NLB, default 127.0.0.1:50050); ModuleService calls go to --address (default ${DEFAULT_MODULE_ADDRESS}). A response with success=false is printed and exits 6.

Exit codes: 0 ok, 1 other failure, 2 usage, 3 not found, 4 unavailable or deadline exceeded, 5 unauthenticated or permission denied, 6 domain failure.`;

  /** `call` is generic: it covers every RPC instead of wrapping one (commands that wrap one set `static rpc`). */
  static rpcs = '*';

  static override args = {
    rpc: Args.string({
      description:
        'RPC to call: marchproxy.NLBService/GetNLBStatus (NLBService/GetNLBStatus and NLBService.GetNLBStatus work too)',
    }),
  };

  static override flags = {
    data: Flags.string({
      char: 'd',
      description: 'Request as protobuf JSON, @file.json to read a file, or - to read stdin',
      default: '{}',
    }),
    address: addressFlag({
      description: `Send the call to this host:port (default: --nlb for NLBService, ${DEFAULT_MODULE_ADDRESS} for ModuleService)`,
    }),
    'max-messages': Flags.custom<number>({ parse: (input) => Promise.resolve(parsePositiveInt(input)) })({
      description: 'Streaming RPCs: cancel the stream after this many messages',
    }),
    duration: durationFlag({ description: 'Streaming RPCs: cancel the stream after this long, e.g. 10s' }),
    list: Flags.boolean({ description: 'List every RPC this command can call, and exit' }),
  };

  static override examples = [
    {
      description: 'Summarise the NLB',
      command: '<%= config.bin %> <%= command.id %> marchproxy.NLBService/GetNLBStatus',
    },
    {
      description: 'List healthy ALB modules',
      command: `<%= config.bin %> <%= command.id %> NLBService/ListModules --data '{"module_type_filter":"MODULE_TYPE_ALB","status_filter":"HEALTH_STATUS_HEALTHY"}'`,
    },
    {
      description: 'Take three metrics snapshots, one a second, as NDJSON',
      command: `<%= config.bin %> <%= command.id %> marchproxy.NLBService/StreamNLBMetrics --data '{"interval_seconds":1}' --max-messages 3`,
    },
    {
      description: 'Ask a module for its status',
      command: `<%= config.bin %> <%= command.id %> marchproxy.ModuleService/GetStatus --address 127.0.0.1:50051 --data '{"instance_id":"alb-1"}'`,
    },
    {
      description: 'Send a request from a file',
      command: '<%= config.bin %> <%= command.id %> NLBService/UpdateRouting --data @routes.json',
    },
  ];

  public async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Call);
    if (flags.list) return this.list();
    if (!args.rpc) throw usageFailure('missing the RPC to call, e.g. marchproxy.NLBService/GetNLBStatus');
    const rpc = findRpc(args.rpc);
    const request = requestFromJson(rpc, parseRequestJson(await readRequestText(flags.data)), this.schema());
    const isNlb = rpc.service === 'marchproxy.NLBService';
    const endpoint = flags.address
      ? addressEndpoint(flags.address, isNlb ? 'the NLB' : 'the module')
      : isNlb
        ? nlbEndpoint(flags.nlb)
        : addressEndpoint(DEFAULT_MODULE_ADDRESS);
    const { conn, target } = this.connect(flags, endpoint, rpc.fullName);

    if (rpc.kind === 'unary') {
      const response = await callUnary({ conn, rpc, request, target, timeoutMs: flags.timeout });
      if (!this.jsonEnabled()) this.out(JSON.stringify(response, null, 2));
      return response;
    }
    if (rpc.kind !== 'server-streaming') {
      throw usageFailure(
        `${rpc.fullName} is ${rpc.kind}; mpctl call supports unary and server-streaming RPCs`,
      );
    }
    await this.untilInterrupted((signal) =>
      callServerStream({
        conn,
        rpc,
        request,
        target,
        signal,
        maxMessages: flags['max-messages'],
        durationMs: flags.duration,
        onMessage: (json) => this.out(JSON.stringify(json)),
      }),
    );
    return undefined;
  }

  private list(): Array<Pick<RpcMethod, 'fullName' | 'kind' | 'requestType' | 'responseType'>> {
    const rows = listRpcs().map(({ fullName, kind, requestType, responseType }) => ({
      fullName,
      kind,
      requestType,
      responseType,
    }));
    if (!this.jsonEnabled()) {
      for (const row of rows) this.out(row.kind === 'unary' ? row.fullName : `${row.fullName} (${row.kind})`);
    }
    return rows;
  }

  /** The contract's descriptors; without them (a broken install) requests go unchecked. */
  private schema(): RequestSchema | undefined {
    try {
      return loadRequestSchema(join(this.config.root, 'proto'));
    } catch (e) {
      this.warn(`request fields are not checked: cannot load the .proto files (${(e as Error).message})`);
      return undefined;
    }
  }
}
