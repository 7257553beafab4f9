/** The first-packet corpus (test/fixtures/first-packets): real clients' first bytes and what detect() must say. */
import { readFileSync } from 'node:fs';
import type { Detection } from '../../services/nlb/dataplane/detect.js';

const dir = new URL('../fixtures/first-packets/', import.meta.url);

export interface CorpusPacket {
  file: string;
  source: string;
  origin: 'captured' | 'hand-built';
  /** For need-more only the kind is given (minBytes is a hint). */
  expect: Detection;
  finalExpect?: Detection;
  bytes: Buffer;
}

interface Index {
  packets: Omit<CorpusPacket, 'bytes'>[];
}

const index = JSON.parse(readFileSync(new URL('index.json', dir), 'utf8')) as Index;

export const corpus: CorpusPacket[] = index.packets.map((p) => ({
  ...p,
  bytes: readFileSync(new URL(p.file, dir)),
}));

export function packet(file: string): CorpusPacket {
  const p = corpus.find((c) => c.file === file);
  if (!p) throw new Error(`no corpus packet ${file}`);
  return p;
}
