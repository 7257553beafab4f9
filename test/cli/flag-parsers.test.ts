import { describe, expect, it } from 'vitest';
import {
  formatDurationMs,
  parseDurationMs,
  parseHostPort,
  parsePositiveInt,
} from '../../cli/flag-parsers.js';

describe('parseDurationMs', () => {
  it.each([
    ['500', 500],
    ['250ms', 250],
    ['5s', 5000],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
  ])('%s is %s ms', (input, ms) => {
    expect(parseDurationMs(input)).toBe(ms);
  });

  it.each([['5x'], [''], ['-1s'], ['0'], ['s']])('rejects %j', (input) => {
    expect(() => parseDurationMs(input)).toThrow(/expected a duration/);
  });
});

describe('parseHostPort', () => {
  it.each([['127.0.0.1:50050'], ['localhost:1'], ['[::1]:50050'], ['nlb.internal.example:443']])(
    'accepts %s',
    (input) => {
      expect(parseHostPort(input)).toBe(input);
    },
  );

  it.each([['localhost'], ['127.0.0.1'], [':50050'], ['dns:///nlb:50050'], ['host:port'], ['::1:50050']])(
    'rejects %s',
    (input) => {
      expect(() => parseHostPort(input)).toThrow(/expected host:port/);
    },
  );

  it('rejects ports out of range', () => {
    expect(() => parseHostPort('127.0.0.1:0')).toThrow('port must be 1-65535');
    expect(() => parseHostPort('127.0.0.1:65536')).toThrow('port must be 1-65535');
  });
});

describe('parsePositiveInt and formatDurationMs', () => {
  it('parses counts and refuses zero or fractions', () => {
    expect(parsePositiveInt('3')).toBe(3);
    expect(() => parsePositiveInt('0')).toThrow();
    expect(() => parsePositiveInt('1.5')).toThrow();
  });

  it('formats durations for messages', () => {
    expect(formatDurationMs(800)).toBe('800ms');
    expect(formatDurationMs(10_000)).toBe('10s');
    expect(formatDurationMs(1500)).toBe('1.5s');
  });
});
