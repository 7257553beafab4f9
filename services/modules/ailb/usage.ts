/**
 * Token accounting for the AILB: the `usage` a backend reports (in a JSON body, or in a
 * server-sent event of a stream), read from a copy of the bytes as they pass through, and an
 * estimate (about four characters per token) when a response carries none. Pure.
 */

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** True when counted from characters, not reported by the backend. */
  estimated: boolean;
}

/** About four characters of English text per token (OpenAI's rule of thumb). */
export function estimateTokens(chars: number): number {
  return chars <= 0 ? 0 : Math.ceil(chars / 4);
}

function textLength(v: unknown): number {
  if (typeof v === 'string') return v.length;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + textLength(x), 0);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.text === 'string') return o.text.length;
    if (typeof o.content === 'string' || Array.isArray(o.content)) return textLength(o.content);
  }
  return 0;
}

/** Characters of prompt in a request body (chat messages, completion prompt, embedding input). */
export function promptChars(body: Record<string, unknown>): number {
  return textLength(body.messages) + textLength(body.prompt) + textLength(body.input);
}

function reportedUsage(v: unknown): Omit<Usage, 'estimated'> | null {
  if (!v || typeof v !== 'object') return null;
  const u = v as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0);
  const prompt = num(u.prompt_tokens);
  const completion = num(u.completion_tokens);
  const total = num(u.total_tokens) || prompt + completion;
  if (total === 0 && prompt === 0 && completion === 0) return null;
  return { promptTokens: prompt, completionTokens: completion, totalTokens: total };
}

/** Characters of generated text in one response object or stream chunk. */
function completionChars(o: Record<string, unknown>): number {
  let n = 0;
  if (Array.isArray(o.choices)) {
    for (const c of o.choices as Array<Record<string, unknown>>) {
      if (!c || typeof c !== 'object') continue;
      n += textLength((c.delta as Record<string, unknown> | undefined)?.content);
      n += textLength((c.message as Record<string, unknown> | undefined)?.content);
      if (typeof c.text === 'string') n += c.text.length;
    }
  }
  return n;
}

/**
 * Watches a response body go by. For event streams it reads "data:" lines as they complete;
 * for JSON it keeps up to `maxJsonBytes` and parses at the end. Never changes the bytes.
 */
export class UsageTap {
  private usage: Omit<Usage, 'estimated'> | null = null;
  private generatedChars = 0;
  private partial = '';
  private readonly json: Buffer[] = [];
  private jsonBytes = 0;
  private jsonOverflow = false;
  /** Events seen (stream responses). */
  events = 0;

  constructor(
    private readonly kind: 'sse' | 'json' | 'other',
    private readonly maxJsonBytes = 1024 * 1024,
  ) {}

  feed(chunk: Buffer): void {
    if (this.kind === 'sse') {
      const text = this.partial + chunk.toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      if (this.partial.length > 1024 * 1024) this.partial = '';
      for (const line of lines) this.line(line.endsWith('\r') ? line.slice(0, -1) : line);
    } else if (this.kind === 'json' && !this.jsonOverflow) {
      this.jsonBytes += chunk.length;
      if (this.jsonBytes > this.maxJsonBytes) {
        this.jsonOverflow = true;
        this.json.length = 0;
      } else this.json.push(Buffer.from(chunk));
    }
  }

  private line(line: string): void {
    if (!line.startsWith('data:')) return;
    const data = line.slice(5).trim();
    if (!data || data === '[DONE]') return;
    this.events++;
    try {
      const o = JSON.parse(data) as Record<string, unknown>;
      this.generatedChars += completionChars(o);
      this.usage = reportedUsage(o.usage) ?? this.usage;
    } catch {
      // Not JSON: nothing to count.
    }
  }

  /** The usage of the whole response: reported, or estimated from the prompt and what went by. */
  finish(promptCharCount: number): Usage {
    if (this.kind === 'sse' && this.partial) this.line(this.partial.trimEnd());
    if (this.kind === 'json' && !this.jsonOverflow && this.json.length) {
      try {
        const o = JSON.parse(Buffer.concat(this.json).toString('utf8')) as Record<string, unknown>;
        this.usage = reportedUsage(o.usage);
        this.generatedChars = completionChars(o);
      } catch {
        // Not JSON after all.
      }
    }
    if (this.usage) return { ...this.usage, estimated: false };
    const promptTokens = estimateTokens(promptCharCount);
    const completionTokens = estimateTokens(this.generatedChars);
    return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens, estimated: true };
  }
}
