/**
 * Pure parsers behind mpctl's flags. oclif calls them from each flag's `parse`, so a bad value
 * fails during flag parsing (usage error, exit 2) with a message that says what is expected.
 */

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration: a bare number of milliseconds ("500") or a number with a unit
 * ("250ms", "5s", "1.5m", "1h"). Returns milliseconds; rejects zero and negatives.
 */
export function parseDurationMs(input: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(input);
  if (!match) {
    throw new Error(`expected a duration such as 500ms, 5s, 2m or a number of milliseconds, got "${input}"`);
  }
  const ms = Math.round(Number(match[1]) * DURATION_UNITS_MS[match[2] ?? 'ms']);
  if (ms <= 0) throw new Error(`expected a duration greater than zero, got "${input}"`);
  return ms;
}

/**
 * Validates a gRPC address written as host:port, [ipv6]:port or ipv4:port and returns it
 * unchanged. Schemes (dns:, unix:) are refused: mpctl talks to one host and port.
 */
export function parseHostPort(input: string): string {
  const value = input.trim();
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value);
  if (!match) {
    throw new Error(`expected host:port (e.g. 127.0.0.1:50050 or [::1]:50050), got "${input}"`);
  }
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) throw new Error(`port must be 1-65535, got ${match[3]} in "${input}"`);
  return value;
}

/** Parses a positive integer count (e.g. --max-messages). */
export function parsePositiveInt(input: string): number {
  if (!/^\s*\d+\s*$/.test(input) || Number(input) < 1) {
    throw new Error(`expected a whole number of at least 1, got "${input}"`);
  }
  return Number(input);
}

/** Formats milliseconds for messages: "800ms", "10s", "1.5s". */
export function formatDurationMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${Math.round(ms / 100) / 10}s`;
}

/** Parses "key=value" (the value may contain "="); rejects an empty key or a missing "=". */
export function parseKeyValue(input: string): { key: string; value: string } {
  const cut = input.indexOf('=');
  if (cut <= 0) throw new Error(`expected key=value, got "${input}"`);
  return { key: input.slice(0, cut).trim(), value: input.slice(cut + 1) };
}

/** Parses a whole number of at least 0 (e.g. --weight 0). */
export function parseNonNegativeInt(input: string): number {
  if (!/^\s*\d+\s*$/.test(input)) throw new Error(`expected a whole number of at least 0, got "${input}"`);
  return Number(input);
}
