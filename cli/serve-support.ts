/** Shared by the `serve` commands: turn a startup failure into one clear line and exit 2/1. */
import type { Command } from '@oclif/core';
import { isDomainError } from '../services/shared/errors.js';

/** Runs `f`; a failure prints "cannot start: <why>" on stderr and exits (2 for bad config, 1 otherwise). */
export function serverFailure<T>(cmd: Command, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const why = isDomainError(e)
      ? `${e.message}${e.details.problems && !e.message.includes(e.details.problems) ? `\n${e.details.problems}` : ''}`
      : e instanceof Error
        ? e.message
        : String(e);
    cmd.logToStderr(`cannot start: ${why}`);
    return cmd.exit(isDomainError(e) && e.kind === 'invalid_argument' ? 2 : 1);
  }
}
