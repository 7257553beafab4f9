import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { Errors } from '@oclif/core';
import { describe, expect, it } from 'vitest';
import {
  CliFailure,
  envelopeFailure,
  exitCodeForStatus,
  grpcFailure,
  toCliFailure,
  usageFailure,
  type CallTarget,
} from '../../cli/exit-codes.js';

const target: CallTarget = {
  address: '127.0.0.1:50050',
  serverLabel: 'the NLB',
  serverHint: 'is `mpctl serve nlb` running?',
  addressHint: 'set --nlb or MPCTL_NLB',
  rpc: 'marchproxy.NLBService/ListModules',
  tokenSent: false,
  tls: false,
  timeoutMs: 10_000,
};

function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), {
    code,
    details,
    metadata: new Metadata(),
  });
}

describe('exit codes', () => {
  it.each([
    [status.NOT_FOUND, 3],
    [status.UNAVAILABLE, 4],
    [status.DEADLINE_EXCEEDED, 4],
    [status.UNAUTHENTICATED, 5],
    [status.PERMISSION_DENIED, 5],
    [status.INVALID_ARGUMENT, 6],
    [status.FAILED_PRECONDITION, 6],
    [status.ALREADY_EXISTS, 6],
    [status.RESOURCE_EXHAUSTED, 6],
    [status.ABORTED, 6],
    [status.OUT_OF_RANGE, 6],
    [status.INTERNAL, 1],
    [status.UNKNOWN, 1],
    [status.UNIMPLEMENTED, 1],
    [status.CANCELLED, 1],
    [status.DATA_LOSS, 1],
  ])('maps gRPC status %s to exit %s', (code, exit) => {
    expect(exitCodeForStatus(code)).toBe(exit);
    expect(grpcFailure(serviceError(code, 'x'), target).exitCode).toBe(exit);
  });
});

describe('grpcFailure messages', () => {
  it('names the address and what to try when the connection is refused', () => {
    const err = serviceError(
      status.UNAVAILABLE,
      'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:50050 (2024-05-01T12:00:00.000Z)',
    );
    expect(grpcFailure(err, target).message).toBe(
      'cannot reach the NLB at 127.0.0.1:50050 (connection refused): is `mpctl serve nlb` running? set --nlb or MPCTL_NLB',
    );
  });

  it('says which token flag to use on UNAUTHENTICATED', () => {
    const err = serviceError(status.UNAUTHENTICATED, 'missing bearer token');
    expect(grpcFailure(err, target).message).toBe(
      'UNAUTHENTICATED from 127.0.0.1:50050: missing bearer token; pass --token or set MPCTL_TOKEN',
    );
    expect(grpcFailure(err, { ...target, tokenSent: true }).message).toContain('the token was rejected');
  });

  it('gives the deadline it waited', () => {
    const failure = grpcFailure(serviceError(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), {
      ...target,
      timeoutMs: 1500,
    });
    expect(failure.message).toBe(
      'no answer from the NLB at 127.0.0.1:50050 within 1.5s (DEADLINE_EXCEEDED): raise --timeout, or check that 127.0.0.1:50050 is the NLB',
    );
    expect(failure.code).toBe('DEADLINE_EXCEEDED');
  });

  it('keeps a server-side UNAVAILABLE as the server said it, on one line', () => {
    const failure = grpcFailure(serviceError(status.UNAVAILABLE, 'module alb-1\nis draining'), target);
    expect(failure.message).toBe('UNAVAILABLE from 127.0.0.1:50050: module alb-1 is draining');
  });

  it('suggests --tls when a plaintext client meets a TLS server', () => {
    const err = serviceError(status.UNAVAILABLE, 'Connection dropped');
    expect(grpcFailure(err, target).message).toContain('if it serves TLS, pass --tls;');
  });
});

describe('envelopeFailure', () => {
  it('exits 6 and carries the response', () => {
    const json = { message: 'port taken', error: { code: 'STATUS_CODE_ALREADY_EXISTS' } };
    const failure = envelopeFailure(
      'marchproxy.NLBService/RegisterModule',
      { success: false, message: 'port taken' },
      json,
    );
    expect(failure.toJSON()).toEqual({
      message:
        'marchproxy.NLBService/RegisterModule answered success=false: port taken (STATUS_CODE_ALREADY_EXISTS)',
      code: 'STATUS_CODE_ALREADY_EXISTS',
      exitCode: 6,
      response: json,
    });
  });

  it('exits 3 for STATUS_CODE_NOT_FOUND and says DOMAIN_FAILURE without an error code', () => {
    expect(
      envelopeFailure('r', { success: false }, { error: { code: 'STATUS_CODE_NOT_FOUND' } }).exitCode,
    ).toBe(3);
    expect(envelopeFailure('r', { success: false }, {}).code).toBe('DOMAIN_FAILURE');
  });
});

describe('toCliFailure', () => {
  it('passes CliFailures through', () => {
    const failure = usageFailure('bad');
    expect(toCliFailure(failure)).toBe(failure);
  });

  it('turns oclif parse errors into one-line usage failures', () => {
    const err = new Errors.CLIError('Nonexistent flag: --bogus\nSee more help with --help');
    Object.assign(err, { parse: {} });
    expect(toCliFailure(err)).toMatchObject({
      exitCode: 2,
      code: 'USAGE',
      message: 'Nonexistent flag: --bogus',
    });
  });

  it('turns a flag parse error into "--flag: reason"', () => {
    const err = new Error('Parsing --nlb \n\texpected host:port\nSee more help with --help');
    expect(toCliFailure(err).message).toBe('--nlb: expected host:port');
  });

  it('maps anything else to exit 1 on one line', () => {
    const failure = toCliFailure(new Error('boom\n  at somewhere'));
    expect(failure).toBeInstanceOf(CliFailure);
    expect(failure.toJSON()).toEqual({ message: 'boom at somewhere', code: 'ERROR', exitCode: 1 });
  });
});
