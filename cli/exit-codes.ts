/**
 * mpctl's exit codes and the one place failures become them. Every failure is reported as
 * one line that names what was tried and what to try next.
 *
 *   0  ok
 *   1  anything else (INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED, DATA_LOSS, bugs)
 *   2  usage: bad flags, arguments, JSON or unknown request fields
 *   3  not found: NOT_FOUND, or a response envelope with STATUS_CODE_NOT_FOUND
 *   4  unavailable: cannot connect, UNAVAILABLE, DEADLINE_EXCEEDED
 *   5  UNAUTHENTICATED or PERMISSION_DENIED
 *   6  domain failure: success=false in a response envelope, or INVALID_ARGUMENT,
 *      FAILED_PRECONDITION, ALREADY_EXISTS, RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { formatDurationMs } from './flag-parsers.js';

/** The documented exit codes. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  unavailable: 4,
  auth: 5,
  domain: 6,
} as const;

/** One of the documented exit codes. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The `{"error": …}` body printed under --json. */
export interface FailureJson {
  message: string;
  code: string;
  exitCode: ExitCode;
  response?: unknown;
}

/** A failure mpctl reports as one line (or one JSON object) and an exit code. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';

  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** A stable machine-readable code: USAGE, a gRPC status name, or an envelope StatusCode. */
    readonly code: string,
    /** The response that carried a domain failure, in protobuf JSON form. */
    readonly response?: unknown,
  ) {
    super(message);
  }

  /** The body of the `{"error": …}` object. */
  toJSON(): FailureJson {
    const body: FailureJson = { message: this.message, code: this.code, exitCode: this.exitCode };
    if (this.response !== undefined) body.response = this.response;
    return body;
  }
}

/** A usage failure (exit 2): bad flags, arguments or request JSON. */
export function usageFailure(message: string): CliFailure {
  return new CliFailure(message, ExitCode.usage, 'USAGE');
}

/** Where a call went, so failure messages can name it and say what to change. */
export interface CallTarget {
  /** host:port the call went to. */
  address: string;
  /** What is expected there, for messages: "the NLB", "the module". */
  serverLabel: string;
  /** What should be running there, e.g. "is `mpctl serve nlb` running?". */
  serverHint: string;
  /** How to point mpctl elsewhere, e.g. "set --nlb or MPCTL_NLB". */
  addressHint: string;
  /** Full RPC name, e.g. "marchproxy.NLBService/GetNLBStatus". */
  rpc: string;
  tokenSent: boolean;
  tls: boolean;
  /** The deadline used for unary calls. */
  timeoutMs?: number;
}

const EXIT_BY_STATUS: Readonly<Partial<Record<status, ExitCode>>> = {
  [status.INVALID_ARGUMENT]: ExitCode.domain,
  [status.FAILED_PRECONDITION]: ExitCode.domain,
  [status.ALREADY_EXISTS]: ExitCode.domain,
  [status.RESOURCE_EXHAUSTED]: ExitCode.domain,
  [status.ABORTED]: ExitCode.domain,
  [status.OUT_OF_RANGE]: ExitCode.domain,
  [status.NOT_FOUND]: ExitCode.notFound,
  [status.UNAVAILABLE]: ExitCode.unavailable,
  [status.DEADLINE_EXCEEDED]: ExitCode.unavailable,
  [status.UNAUTHENTICATED]: ExitCode.auth,
  [status.PERMISSION_DENIED]: ExitCode.auth,
};

/** The exit code for a gRPC status (1 for codes without a class of their own). */
export function exitCodeForStatus(code: status): ExitCode {
  return EXIT_BY_STATUS[code] ?? ExitCode.failure;
}

/** True for errors grpc-js reports for a failed call. */
export function isServiceError(e: unknown): e is ServiceError {
  return (
    e instanceof Error &&
    typeof (e as Partial<ServiceError>).code === 'number' &&
    typeof (e as Partial<ServiceError>).details === 'string'
  );
}

/** Collapses a multi-line message into one line. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

// grpc-js reports transport failures as UNAVAILABLE with the socket error inside `details`.
const TRANSPORT_REASONS: ReadonlyArray<readonly [RegExp, string]> = [
  [/ECONNREFUSED/, 'connection refused'],
  [/ENOTFOUND|EAI_AGAIN|Name resolution failed|DNS resolution failed/i, 'host not found'],
  [/ETIMEDOUT|connect timeout/i, 'connection timed out'],
  [/EHOSTUNREACH|ENETUNREACH/, 'host unreachable'],
  [/ECONNRESET|Connection dropped|socket hang up/i, 'connection reset'],
  [/SSL|TLS|certificate|handshake|wrong version number/i, 'TLS handshake failed'],
  [/No connection established|Failed to connect/i, 'no connection'],
];

function transportReason(details: string): string | undefined {
  return TRANSPORT_REASONS.find(([pattern]) => pattern.test(details))?.[1];
}

/** Turns a failed call into a one-line CliFailure that names the address and what to try. */
export function grpcFailure(err: ServiceError, target: CallTarget): CliFailure {
  const code = err.code;
  const name = status[code] ?? `STATUS_${code}`;
  const details = oneLine(err.details || err.message);
  const at = target.address;
  const exit = exitCodeForStatus(code);
  switch (code) {
    case status.UNAVAILABLE: {
      const reason = transportReason(details);
      if (!reason) return new CliFailure(`UNAVAILABLE from ${at}: ${details}`, exit, name);
      const tlsHint =
        reason === 'TLS handshake failed' || reason === 'connection reset'
          ? target.tls
            ? ' does it serve plaintext? drop --tls;'
            : ' if it serves TLS, pass --tls;'
          : '';
      return new CliFailure(
        `cannot reach ${target.serverLabel} at ${at} (${reason}): ${target.serverHint}${tlsHint} ${target.addressHint}`,
        exit,
        name,
      );
    }
    case status.DEADLINE_EXCEEDED: {
      const within = target.timeoutMs === undefined ? '' : ` within ${formatDurationMs(target.timeoutMs)}`;
      return new CliFailure(
        `no answer from ${target.serverLabel} at ${at}${within} (DEADLINE_EXCEEDED): raise --timeout, or check that ${at} is ${target.serverLabel}`,
        exit,
        name,
      );
    }
    case status.UNAUTHENTICATED: {
      const hint = target.tokenSent
        ? 'the token was rejected; check --token or MPCTL_TOKEN'
        : 'pass --token or set MPCTL_TOKEN';
      return new CliFailure(`UNAUTHENTICATED from ${at}: ${details}; ${hint}`, exit, name);
    }
    case status.PERMISSION_DENIED:
      return new CliFailure(
        `PERMISSION_DENIED from ${at}: ${details}; the token's principal may not call ${target.rpc}`,
        exit,
        name,
      );
    case status.UNIMPLEMENTED:
      return new CliFailure(
        `UNIMPLEMENTED from ${at}: it does not serve ${target.rpc}; is it ${target.serverLabel}? ${target.addressHint}`,
        exit,
        name,
      );
    default:
      return new CliFailure(`${name} from ${at}: ${details}`, exit, name);
  }
}

/** The envelope fields of a decoded response that has `success`/`message`/`error`. */
interface DecodedEnvelope {
  success: boolean;
  message?: string;
  error?: { message?: string };
}

/** True when a decoded response carries `success: false`. */
export function isFailedEnvelope(decoded: unknown): decoded is DecodedEnvelope {
  return typeof decoded === 'object' && decoded !== null && (decoded as DecodedEnvelope).success === false;
}

/**
 * A domain failure reported inside a response (success=false). `json` is the response in
 * protobuf JSON form, whose `error.code` is the StatusCode name. NOT_FOUND keeps exit 3 so a
 * script sees the same code whether the server used a gRPC status or the envelope.
 */
export function envelopeFailure(rpc: string, decoded: DecodedEnvelope, json: unknown): CliFailure {
  const errorJson = (json as { error?: { code?: unknown } }).error;
  const code = typeof errorJson?.code === 'string' ? errorJson.code : 'DOMAIN_FAILURE';
  const why = oneLine(decoded.message || decoded.error?.message || 'no reason given');
  const exit =
    code === 'STATUS_CODE_NOT_FOUND'
      ? ExitCode.notFound
      : code === 'STATUS_CODE_PERMISSION_DENIED'
        ? ExitCode.auth
        : ExitCode.domain;
  return new CliFailure(`${rpc} answered success=false: ${why} (${code})`, exit, code, json);
}

/** oclif's parse errors carry `parse`; errors thrown inside a flag's parse get "Parsing --flag". */
function isOclifUsageError(err: Error): boolean {
  return 'parse' in err || /^Parsing --/.test(err.message);
}

function usageMessage(message: string): string {
  return message
    .replace(/^Parsing (--[\w-]+)\s*\n\t/, '$1: ')
    .split('\n')
    .map(oneLine)
    .filter((line) => line && !/^See more help with --help$|^The following errors? occurred:$/.test(line))
    .join('; ');
}

/** Classifies anything a command threw into a CliFailure. */
export function toCliFailure(err: unknown): CliFailure {
  if (err instanceof CliFailure) {
    return err.exitCode === ExitCode.usage && /^Parsing --/.test(err.message)
      ? usageFailure(usageMessage(err.message))
      : err;
  }
  if (err instanceof Error) {
    if (isOclifUsageError(err)) return usageFailure(usageMessage(err.message));
    return new CliFailure(oneLine(err.message) || err.name, ExitCode.failure, 'ERROR');
  }
  return new CliFailure(oneLine(String(err)), ExitCode.failure, 'ERROR');
}
