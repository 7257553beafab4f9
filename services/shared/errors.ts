/**
 * The domain error model (DESIGN.md §6). Domain code throws `DomainError` with a kind and a
 * message a person can act on; one edge mapping (services/shared/grpc/error-edge.ts) turns it
 * into a gRPC status or into a response's `Error` field. Anything else that escapes a handler
 * is a bug: it becomes INTERNAL with the cause logged, never sent.
 */
export type ErrorKind =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'permission_denied'
  | 'unauthenticated'
  | 'resource_exhausted'
  | 'unavailable'
  | 'deadline_exceeded'
  | 'internal';

export const ERROR_KINDS: readonly ErrorKind[] = [
  'invalid_argument',
  'not_found',
  'already_exists',
  'failed_precondition',
  'permission_denied',
  'unauthenticated',
  'resource_exhausted',
  'unavailable',
  'deadline_exceeded',
  'internal',
];

/** A failure the caller can understand and act on. */
export class DomainError extends Error {
  override readonly name = 'DomainError';

  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details: Readonly<Record<string, string>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `e` is a DomainError (also across module copies, by shape). */
export function isDomainError(e: unknown): e is DomainError {
  return (
    e instanceof DomainError ||
    (typeof e === 'object' &&
      e !== null &&
      (e as { name?: unknown }).name === 'DomainError' &&
      ERROR_KINDS.includes((e as { kind?: unknown }).kind as ErrorKind))
  );
}

type Details = Record<string, string>;

export const invalidArgument = (message: string, details?: Details) =>
  new DomainError('invalid_argument', message, details);
export const notFound = (message: string, details?: Details) =>
  new DomainError('not_found', message, details);
export const alreadyExists = (message: string, details?: Details) =>
  new DomainError('already_exists', message, details);
export const failedPrecondition = (message: string, details?: Details) =>
  new DomainError('failed_precondition', message, details);
export const permissionDenied = (message: string, details?: Details) =>
  new DomainError('permission_denied', message, details);
export const unauthenticated = (message: string, details?: Details) =>
  new DomainError('unauthenticated', message, details);
export const resourceExhausted = (message: string, details?: Details) =>
  new DomainError('resource_exhausted', message, details);
export const unavailable = (message: string, details?: Details) =>
  new DomainError('unavailable', message, details);

/**
 * Collects validation problems so that one response can name all of them.
 * `check()` throws an invalid_argument DomainError listing every problem, or returns quietly.
 */
export class Problems {
  readonly list: string[] = [];

  add(problem: string): this {
    this.list.push(problem);
    return this;
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  check(what: string): void {
    if (this.list.length === 0) return;
    const head =
      this.list.length === 1 ? this.list[0] : `${this.list.length} problems: ${this.list.join('; ')}`;
    throw new DomainError('invalid_argument', `invalid ${what}: ${head}`, {
      problems: this.list.join('\n'),
    });
  }
}
