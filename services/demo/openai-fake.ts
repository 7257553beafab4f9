/**
 * The deterministic content of the OpenAI-compatible demo backend: replies, fake token counts
 * and embeddings that depend only on the request, so tests can assert exact values. Pure.
 */
import { createHash } from 'node:crypto';

/** A chat message as clients send it (content may be a string or text parts). */
export interface ChatMessage {
  role?: string;
  content?: unknown;
}

/** Token usage as OpenAI reports it. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** A rough token count: one per word or punctuation run (fake, but stable). */
export function countTokens(text: string): number {
  return (text.match(/[A-Za-z0-9_]+|[^\sA-Za-z0-9_]/g) ?? []).length;
}

/** The text of a message's content (strings, or the text of `[{type: 'text', text}]` parts). */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) =>
        typeof part === 'object' && part && 'text' in part ? String((part as { text: unknown }).text) : '',
      )
      .filter(Boolean)
      .join(' ');
  }
  return '';
}

/** Prompt tokens of a conversation: each message's tokens plus 3 for its framing, plus 3. */
export function promptTokens(messages: readonly ChatMessage[]): number {
  return messages.reduce((n, m) => n + countTokens(contentText(m.content)) + 3, 3);
}

/** The reply to a conversation: names the backend and model and quotes the last user message. */
export function chatReply(backend: string, model: string, messages: readonly ChatMessage[]): string {
  const last = [...messages].reverse().find((m) => m.role === 'user');
  const quoted = contentText(last?.content).replace(/\s+/g, ' ').trim().slice(0, 200);
  return `Hello from ${backend} (${model}). You said: "${quoted || '(nothing)'}". This is a demo reply.`;
}

/** The completion of a prompt. */
export function completionReply(backend: string, model: string, prompt: string): string {
  const quoted = prompt.replace(/\s+/g, ' ').trim().slice(0, 200);
  return ` and so ${backend} (${model}) completes "${quoted}" with a demo sentence.`;
}

/**
 * `text` cut to at most `maxTokens` tokens (whole words kept), and whether it was cut. The
 * pieces are also what a stream sends, one chunk each.
 */
export function tokenPieces(text: string, maxTokens?: number): { pieces: string[]; cut: boolean } {
  const pieces = text.match(/\s*\S+/g) ?? [];
  if (maxTokens === undefined || maxTokens <= 0) return { pieces, cut: false };
  const kept: string[] = [];
  let used = 0;
  for (const piece of pieces) {
    const n = countTokens(piece);
    if (used + n > maxTokens) return { pieces: kept, cut: true };
    kept.push(piece);
    used += n;
  }
  return { pieces: kept, cut: false };
}

/** A unit-length embedding of `text` with `dimensions` numbers, from its SHA-256. */
export function embedding(text: string, dimensions: number): number[] {
  const values: number[] = [];
  for (let block = 0; values.length < dimensions; block++) {
    const digest = createHash('sha256').update(`${block}:${text}`).digest();
    for (let i = 0; i + 1 < digest.length && values.length < dimensions; i += 2) {
      values.push(digest.readUInt16BE(i) / 32767.5 - 1);
    }
  }
  const norm = Math.sqrt(values.reduce((a, v) => a + v * v, 0)) || 1;
  return values.map((v) => Math.round((v / norm) * 1e6) / 1e6);
}

/** An embedding as OpenAI's base64 encoding: little-endian float32s. */
export function embeddingBase64(values: readonly number[]): string {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buffer.writeFloatLE(v, i * 4));
  return buffer.toString('base64');
}

/** Usage of a prompt and a completion. */
export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
