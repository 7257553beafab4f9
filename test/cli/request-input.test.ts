import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CliFailure } from '../../cli/exit-codes.js';
import {
  lineAndColumn,
  locateJsonError,
  parseRequestJson,
  readRequestText,
} from '../../cli/request-input.js';

function failureOf(fn: () => unknown): CliFailure {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliFailure) return e;
    throw e;
  }
  throw new Error('expected a CliFailure');
}

describe('locateJsonError', () => {
  it.each([
    ['{"a":1}', undefined],
    [' [1, {"b": [true, null, -1.5e3]}, "x\\"y"] ', undefined],
    ['{"a":}', { offset: 5, reason: 'expected a JSON value but found "}"' }],
    ['{"a":1,}', { offset: 7, reason: 'expected a double-quoted property name but found "}"' }],
    ['{"a" 1}', { offset: 5, reason: 'expected ":" after the property name but found "1"' }],
    ['{"a":1', { offset: 6, reason: 'expected "," or "}" but found the end of the input' }],
    ['', { offset: 0, reason: 'expected a JSON value but found the end of the input' }],
    ["{'a':1}", { offset: 1, reason: 'expected a double-quoted property name but found "\'"' }],
    ['{"a":1}x', { offset: 7, reason: 'expected the end of the input after the JSON value but found "x"' }],
    ['[1,]', { offset: 3, reason: 'expected a JSON value but found "]"' }],
    ['{"a":"b', { offset: 7, reason: 'expected a closing quote but found the end of the input' }],
    ['{"a":01}', { offset: 6, reason: 'expected "," or "}" but found "1"' }],
  ])('%j → %j', (text, expected) => {
    expect(locateJsonError(text)).toEqual(expected);
    // The scanner and JSON.parse agree on what is valid.
    expect(expected === undefined).toBe(
      (() => {
        try {
          JSON.parse(text);
          return true;
        } catch {
          return false;
        }
      })(),
    );
  });

  it('gives 1-based line and column', () => {
    expect(lineAndColumn('{\n  "a": tru\n}', 9)).toEqual({ line: 2, column: 8 });
    expect(lineAndColumn('x', 0)).toEqual({ line: 1, column: 1 });
  });
});

describe('parseRequestJson', () => {
  it('parses JSON', () => {
    expect(parseRequestJson({ text: '{"a":[1]}', source: '--data' })).toEqual({ a: [1] });
  });

  it('is a usage failure naming the source, line and column', () => {
    const failure = failureOf(() =>
      parseRequestJson({ text: '{\n  "a": tru\n}', source: '--data @req.json' }),
    );
    expect(failure.exitCode).toBe(2);
    expect(failure.message).toBe(
      '--data @req.json is not valid JSON: expected a JSON value but found "t" at line 2, column 8',
    );
  });
});

describe('readRequestText', () => {
  it('returns inline text as it is', async () => {
    expect(await readRequestText('{"a":1}')).toEqual({ text: '{"a":1}', source: '--data' });
  });

  it('reads @file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpctl-'));
    const file = join(dir, 'req.json');
    writeFileSync(file, '{"include_modules":true}');
    expect(await readRequestText(`@${file}`)).toEqual({
      text: '{"include_modules":true}',
      source: `--data @${file}`,
    });
  });

  it('is a usage failure when the file cannot be read', async () => {
    await expect(readRequestText('@/nonexistent/req.json')).rejects.toMatchObject({
      exitCode: 2,
      message:
        'cannot read the request file /nonexistent/req.json (ENOENT); --data @file needs a readable JSON file',
    });
  });

  it('reads - from stdin', async () => {
    const stdin = Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]);
    expect(await readRequestText('-', stdin)).toEqual({ text: '{"a":1}', source: '--data - (stdin)' });
  });
});
