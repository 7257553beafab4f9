import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

/** The small logging surface the services use; pino sits behind it. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = LevelWithSilent;

export interface LoggerOptions {
  level?: LogLevel;
  name?: string;
  /** Where lines go; defaults to stderr so that stdout stays for results. */
  destination?: NodeJS.WritableStream;
}

function wrap(p: PinoLogger): Logger {
  return {
    debug: (msg, fields) => (fields ? p.debug(fields, msg) : p.debug(msg)),
    info: (msg, fields) => (fields ? p.info(fields, msg) : p.info(msg)),
    warn: (msg, fields) => (fields ? p.warn(fields, msg) : p.warn(msg)),
    error: (msg, fields) => (fields ? p.error(fields, msg) : p.error(msg)),
    child: (bindings) => wrap(p.child(bindings)),
  };
}

/** Creates a JSON-lines logger. Secrets are redacted by key wherever they appear. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const p = pino(
    {
      level: options.level ?? 'info',
      name: options.name,
      redact: {
        paths: [
          'token',
          '*.token',
          'authorization',
          '*.authorization',
          'apiKey',
          '*.apiKey',
          'password',
          '*.password',
        ],
        censor: '[redacted]',
      },
    },
    (options.destination ?? process.stderr) as pino.DestinationStream,
  );
  return wrap(p);
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  const l: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => l };
  return l;
}

/** A logger that records lines in memory, for tests that assert on logging. */
export function memoryLogger(): Logger & {
  lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }>;
} {
  const lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
  const make = (bindings: Record<string, unknown>): Logger => ({
    debug: (msg, fields) => lines.push({ level: 'debug', msg, fields: { ...bindings, ...fields } }),
    info: (msg, fields) => lines.push({ level: 'info', msg, fields: { ...bindings, ...fields } }),
    warn: (msg, fields) => lines.push({ level: 'warn', msg, fields: { ...bindings, ...fields } }),
    error: (msg, fields) => lines.push({ level: 'error', msg, fields: { ...bindings, ...fields } }),
    child: (b) => make({ ...bindings, ...b }),
  });
  return Object.assign(make({}), { lines });
}
