/**
 * The base of every mpctl command: the shared connection flags, --json, building a gRPC
 * connection, and the one place a failure becomes one stderr line (or an `{"error": …}`
 * object under --json) and an exit code from exit-codes.ts. Results go to stdout only.
 */
import { Command, Errors, Flags, ux, type Interfaces } from '@oclif/core';
import { createClientConnection, type ClientConnection } from '../services/shared/grpc/client.js';
import { ExitCode, toCliFailure, usageFailure, type CallTarget } from './exit-codes.js';
import { parseDurationMs, parseHostPort } from './flag-parsers.js';
import {
  applyConfig,
  ConfigFileError,
  findConfigFile,
  loadConfigFile,
  type ConnectionSettings,
} from './mpctl-config.js';

/** Where the NLB listens unless --nlb or MPCTL_NLB says otherwise. */
export const DEFAULT_NLB_ADDRESS = '127.0.0.1:50050';
/** Where a module listens by default (ModuleService calls without --address). */
export const DEFAULT_MODULE_ADDRESS = '127.0.0.1:50051';

/**
 * A host:port flag, validated while flags are parsed. `xds:///name` targets are accepted too:
 * they load @grpc/grpc-js-xds (bootstrap from GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG)
 * and let the NLB's xDS export pick the endpoint (docs/deploying.md).
 */
export const addressFlag = Flags.custom<string>({
  parse: async (input) => {
    if (!input.trim().startsWith('xds:')) return parseHostPort(input);
    if (!/^xds:\/\/\/[A-Za-z0-9._@-]+$/.test(input.trim()))
      throw new Error(`expected xds:///name (e.g. xds:///alb), got "${input}"`);
    (await import('@grpc/grpc-js-xds')).register();
    return input.trim();
  },
});

/** A duration flag ("500ms", "5s", "2m" or milliseconds), parsed to milliseconds. */
export const durationFlag = Flags.custom<number>({
  parse: (input) => Promise.resolve(parseDurationMs(input)),
});

const CONNECTION = 'CONNECTION';

/** Where a command sends its calls and how to say so in messages. */
export type Endpoint = Omit<CallTarget, 'rpc' | 'tokenSent' | 'tls' | 'timeoutMs'>;

/** The NLB at `address` (from --nlb / MPCTL_NLB). */
export function nlbEndpoint(address: string): Endpoint {
  return {
    address,
    serverLabel: 'the NLB',
    serverHint: 'is `mpctl serve nlb` running?',
    addressHint: 'set --nlb or MPCTL_NLB',
  };
}

/** A module (or anything else) at `address` (from --address). */
export function addressEndpoint(address: string, serverLabel = 'the module'): Endpoint {
  return {
    address,
    serverLabel,
    serverHint: `is ${serverLabel} listening there?`,
    addressHint: 'set --address',
  };
}

export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    nlb: addressFlag({
      description: "NLB gRPC address, host:port (else the config file's)",
      env: 'MPCTL_NLB',
      default: DEFAULT_NLB_ADDRESS,
      helpGroup: CONNECTION,
    }),
    token: Flags.string({
      description: 'Bearer token, sent as "authorization: Bearer <token>" (else the config file\'s)',
      env: 'MPCTL_TOKEN',
      helpGroup: CONNECTION,
    }),
    config: Flags.string({
      description:
        'mpctl config file (NLB address, token, TLS files) [default: ./.mpctl-data/mpctl.json if present, else ~/.config/mpctl/config.json]',
      env: 'MPCTL_CONFIG',
      helpGroup: CONNECTION,
    }),
    tls: Flags.boolean({ description: 'Use TLS (system CA roots unless --ca)', helpGroup: CONNECTION }),
    ca: Flags.file({
      exists: true,
      description: 'PEM CA certificate for the server (implies --tls)',
      helpGroup: CONNECTION,
    }),
    cert: Flags.file({
      exists: true,
      dependsOn: ['key'],
      description: 'PEM client certificate for mutual TLS (implies --tls; needs --key)',
      helpGroup: CONNECTION,
    }),
    key: Flags.file({
      exists: true,
      dependsOn: ['cert'],
      description: 'PEM client key for mutual TLS (implies --tls; needs --cert)',
      helpGroup: CONNECTION,
    }),
    'tls-server-name': Flags.string({
      description:
        "Server name to expect in the server's certificate, when it differs from the host (implies --tls)",
      helpGroup: CONNECTION,
    }),
    timeout: durationFlag({
      description: 'Deadline of each unary call: 500ms, 5s, 1m, or milliseconds',
      default: 10_000,
      defaultHelp: () => Promise.resolve('10s'),
      helpGroup: CONNECTION,
    }),
  };

  /**
   * Parses as oclif does, then fills the connection settings that neither a flag nor the
   * environment gave from the config file (mpctl-config.ts). Commands without the connection
   * flags are left alone.
   */
  protected override async parse<
    F extends Record<string, unknown>,
    B extends Record<string, unknown>,
    A extends Record<string, unknown>,
  >(options?: Interfaces.Input<F, B, A>, argv?: string[]): Promise<Interfaces.ParserOutput<F, B, A>> {
    const parsed = await super.parse(options, argv);
    const flags = parsed.flags as Partial<ConnectionFlags>;
    if (typeof flags.nlb !== 'string') return parsed;
    const given = {
      nlb: !(parsed.metadata.flags.nlb as { setFromDefault?: boolean } | undefined)?.setFromDefault,
      token: flags.token !== undefined,
      tls: Boolean(flags.tls || flags.ca || flags.cert || flags.key || flags['tls-server-name']),
    };
    if (given.nlb && given.token && given.tls) return parsed;
    try {
      const where = findConfigFile(flags.config);
      if (where) applyConfig(flags as ConnectionSettings, given, loadConfigFile(where));
    } catch (e) {
      if (e instanceof ConfigFileError) throw usageFailure(e.message);
      throw e;
    }
    return parsed;
  }

  /**
   * A connection to `endpoint` with the token, TLS and timeout from the flags, plus the
   * CallTarget that failure messages use.
   */
  protected connect(
    flags: ConnectionFlags,
    endpoint: Endpoint,
    rpc: string,
  ): { conn: ClientConnection; target: CallTarget } {
    const tls = Boolean(flags.tls || flags.ca || flags.cert || flags.key || flags['tls-server-name']);
    try {
      const conn = createClientConnection({
        target: endpoint.address,
        token: flags.token,
        timeoutMs: flags.timeout,
        tls: tls && {
          caFile: flags.ca,
          certFile: flags.cert,
          keyFile: flags.key,
          serverName: flags['tls-server-name'],
        },
      });
      return {
        conn,
        target: { ...endpoint, rpc, tokenSent: Boolean(flags.token), tls, timeoutMs: flags.timeout },
      };
    } catch (e) {
      throw usageFailure((e as Error).message);
    }
  }

  /** Writes one result to stdout, verbatim (this.log would expand % sequences). */
  protected out(text: string): void {
    ux.stdout('%s', text);
  }

  /**
   * Runs `fn` with a signal that aborts on Ctrl-C or SIGTERM, so long-running calls stop
   * cleanly instead of the process dying mid-write.
   */
  protected async untilInterrupted<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const abort = () => controller.abort();
    process.once('SIGINT', abort);
    process.once('SIGTERM', abort);
    try {
      return await fn(controller.signal);
    } finally {
      process.off('SIGINT', abort);
      process.off('SIGTERM', abort);
    }
  }

  /** Every failure ends here: one line on stderr (or `{"error": …}` on stdout under --json). */
  protected override catch(err: Interfaces.CommandError): Promise<never> {
    if (err instanceof Errors.ExitError) throw err;
    const failure = toCliFailure(err);
    if (this.jsonEnabled()) {
      this.logJson({ error: failure.toJSON() });
    } else {
      if (failure.response !== undefined) this.out(JSON.stringify(failure.response, null, 2));
      const help =
        failure.exitCode === ExitCode.usage ? `; see \`${this.config.bin} ${this.helpId()} --help\`` : '';
      ux.stderr('%s', `${failure.message}${help}`);
    }
    return this.exit(failure.exitCode);
  }

  private helpId(): string {
    return (this.id ?? '').split(':').join(' ');
  }
}

/** The connection flags every command has. */
export type ConnectionFlags = Interfaces.InferredFlags<typeof BaseCommand.baseFlags>;
