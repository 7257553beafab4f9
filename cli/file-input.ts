/**
 * Structured input of mpctl commands: `-f/--file` takes YAML or JSON (JSON is YAML), `--data`
 * takes the same inline. Bad input is a usage failure (exit 2) naming the source and position.
 */
import { readFile } from 'node:fs/promises';
import { Flags } from '@oclif/core';
import { parseDocument } from 'yaml';
import { usageFailure } from './exit-codes.js';
import { lineAndColumn } from './request-input.js';

/** `-f/--file`: a YAML or JSON file, `-` for stdin. */
export const fileFlag = Flags.string({
  char: 'f',
  description: 'YAML or JSON file (- reads stdin)',
});

/** Parses YAML or JSON text; a usage failure naming `source` and the line when it is invalid. */
export function parseStructured(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const [first] = doc.errors;
  if (first) {
    const { line, column } = lineAndColumn(text, Math.min(first.pos[0], text.length));
    const at = ` at line ${line}, column ${column}`;
    throw usageFailure(`${source} is not valid YAML or JSON${at}: ${first.message.split('\n')[0]}`);
  }
  return doc.toJS() as unknown;
}

/** Reads and parses a YAML or JSON file (`-` reads stdin). */
export async function readStructuredFile(
  path: string,
  flag = '--file',
  stdin: AsyncIterable<Buffer | string> = process.stdin,
): Promise<unknown> {
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return parseStructured(Buffer.concat(chunks).toString('utf8'), `${flag} - (stdin)`);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw usageFailure(`cannot read ${flag} ${path} (${code}); it needs a readable YAML or JSON file`);
  }
  return parseStructured(text, `${flag} ${path}`);
}

/** Requires a mapping (object) at the top level of structured input. */
export function asObject(value: unknown, source: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const got =
      value === null || value === undefined ? 'nothing' : Array.isArray(value) ? 'a list' : typeof value;
    throw usageFailure(`${source} must hold a mapping (an object), got ${got}`);
  }
  return value as Record<string, unknown>;
}
