/**
 * The request body of `mpctl call`: where it comes from (inline, @file, stdin) and how bad
 * JSON is reported. Node's JSON.parse often omits the position ("Unexpected token '}', ...
 * is not valid JSON"), so a small scanner finds the line and column of the first error.
 */
import { readFile } from 'node:fs/promises';
import { usageFailure } from './exit-codes.js';

/** Request text and a label for messages ("--data", "--data @req.json", "--data - (stdin)"). */
export interface RequestText {
  text: string;
  source: string;
}

/** Reads the --data value: inline JSON, `@path` for a file, `-` for stdin. */
export async function readRequestText(
  data: string,
  stdin: AsyncIterable<Buffer | string> = process.stdin,
): Promise<RequestText> {
  if (data === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return { text: Buffer.concat(chunks).toString('utf8'), source: '--data - (stdin)' };
  }
  if (data.startsWith('@')) {
    const path = data.slice(1);
    try {
      return { text: await readFile(path, 'utf8'), source: `--data @${path}` };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw usageFailure(
        `cannot read the request file ${path} (${code}); --data @file needs a readable JSON file`,
      );
    }
  }
  return { text: data, source: '--data' };
}

/** Parses request JSON; a usage failure naming line and column when it is not valid JSON. */
export function parseRequestJson({ text, source }: RequestText): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const found = locateJsonError(text);
    if (!found) throw usageFailure(`${source} is not valid JSON: ${(e as Error).message}`);
    const { line, column } = lineAndColumn(text, found.offset);
    throw usageFailure(`${source} is not valid JSON: ${found.reason} at line ${line}, column ${column}`);
  }
}

/** 1-based line and column of a character offset. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

class ScanError extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

/** Offset and reason of the first syntax error in `text`, or undefined when it is valid JSON. */
export function locateJsonError(text: string): { offset: number; reason: string } | undefined {
  let i = 0;
  const found = () => (i >= text.length ? 'the end of the input' : JSON.stringify(text[i]));
  const fail = (expected: string): never => {
    throw new ScanError(i, `expected ${expected} but found ${found()}`);
  };
  const skipSpace = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const expect = (char: string, expected: string) => {
    skipSpace();
    if (text[i] !== char) fail(expected);
    i++;
  };
  const string = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] < ' ') fail('a closing quote (strings cannot span lines)');
      i += text[i] === '\\' ? 2 : 1;
    }
    if (i >= text.length) fail('a closing quote');
    i++;
  };
  const number = () => {
    const re = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    re.lastIndex = i;
    if (!re.test(text)) fail('a number');
    i = re.lastIndex;
  };
  const value = (): void => {
    skipSpace();
    const c = text[i];
    if (c === '{')
      return members('}', () => {
        skipSpace();
        if (text[i] !== '"') fail('a double-quoted property name');
        string();
        expect(':', '":" after the property name');
        value();
      });
    if (c === '[') return members(']', value);
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    const literal = ['true', 'false', 'null'].find((l) => text.startsWith(l, i));
    if (!literal) return fail('a JSON value');
    i += literal.length;
  };
  const members = (close: string, member: () => void) => {
    i++;
    skipSpace();
    if (text[i] === close) return void i++;
    for (;;) {
      member();
      skipSpace();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === close) return void i++;
      fail(`"," or "${close}"`);
    }
  };
  try {
    value();
    skipSpace();
    if (i < text.length) fail('the end of the input after the JSON value');
    return undefined;
  } catch (e) {
    if (e instanceof ScanError) return { offset: e.offset, reason: e.reason };
    throw e;
  }
}
