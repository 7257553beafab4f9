/**
 * The compact log of `mpctl dev`: pino's JSON lines turned into one short line each,
 * "12:00:01 WARN  alb 1.0  instance alb-1 ended unexpectedly  desired=1". Lines that are not
 * JSON pass through unchanged.
 */
import { Writable } from 'node:stream';

const LEVELS: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** Fields the line already shows, or that say nothing in a local stack. */
const SHOWN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'service', 'module']);

/** One pino JSON line as a compact line (the input unchanged when it is not a pino line). */
export function compactLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof entry !== 'object' || entry === null || typeof entry.msg !== 'string') return line;
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 19) : '--:--:--';
  const level = (LEVELS[Number(entry.level)] ?? String(entry.level)).padEnd(5);
  // A controller's lines carry its module and version; other lines' `version` is about something else.
  const service =
    typeof entry.service === 'string' ? entry.service : typeof entry.name === 'string' ? entry.name : '';
  const version = entry.module !== undefined && typeof entry.version === 'string' ? ` ${entry.version}` : '';
  const who = service + version;
  const fields = Object.entries(entry)
    .filter(([k]) => !SHOWN.has(k) && !(k === 'version' && entry.module !== undefined))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${level} ${who.padEnd(9)} ${entry.msg}${fields ? `  ${fields}` : ''}`;
}

/** A stream for createLogger's destination that writes compact lines to `out`. */
export function compactLogStream(out: NodeJS.WritableStream): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line) out.write(`${compactLine(line)}\n`);
      done();
    },
    final(done) {
      if (pending) out.write(`${compactLine(pending)}\n`);
      done();
    },
  });
}
