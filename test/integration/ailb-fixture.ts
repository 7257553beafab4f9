/**
 * OpenAI-compatible backends for the AILB tests: a node:http server speaking the same API as
 * the gateway (chat completions, streaming or not, completions, embeddings, models), whose
 * answers name the backend, and which can be told to fail, answer 429, or leave out `usage`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface AiRequest {
  path: string;
  model: string;
  stream: boolean;
  authorization: string;
  headers: IncomingMessage['headers'];
}

export interface AiBackendOptions {
  /** Models for its own GET /v1/models. */
  models?: string[];
  /** Leave `usage` out of responses (the gateway must estimate). */
  noUsage?: boolean;
  /** Tokens reported per response (prompt, completion). */
  usage?: [number, number];
  /** Milliseconds between streamed chunks. */
  chunkDelayMs?: number;
  /** Words streamed. */
  words?: string[];
}

export interface AiBackend {
  name: string;
  address: string;
  seen: AiRequest[];
  /** 'ok', 'fail' (500) or 'busy' (429) from now on. */
  mode(m: 'ok' | 'fail' | 'busy'): void;
  /** When the last streamed response ended (ms since epoch), 0 before. */
  lastStreamEndedAt(): number;
  close(): Promise<void>;
}

export async function startAiBackend(name: string, o: AiBackendOptions = {}): Promise<AiBackend> {
  const seen: AiRequest[] = [];
  let mode: 'ok' | 'fail' | 'busy' = 'ok';
  let streamEndedAt = 0;
  const sockets = new Set<Socket>();
  const [promptTokens, completionTokens] = o.usage ?? [10, 5];
  const usage = o.noUsage
    ? undefined
    : {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      };
  const words = o.words ?? ['one', 'two', 'three'];
  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res
      .writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      .end(text);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/v1/models') {
        return json(res, 200, {
          object: 'list',
          data: (o.models ?? []).map((id) => ({ id, object: 'model', owned_by: name })),
        });
      }
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>;
      } catch {
        return json(res, 400, { error: { message: 'bad json' } });
      }
      const model = typeof body.model === 'string' ? body.model : '';
      const stream = body.stream === true;
      seen.push({
        path,
        model,
        stream,
        authorization: String(req.headers.authorization ?? ''),
        headers: req.headers,
      });
      if (mode === 'fail')
        return json(res, 500, { error: { message: `${name} is failing`, type: 'server_error' } });
      if (mode === 'busy')
        return json(res, 429, { error: { message: `${name} is busy`, type: 'rate_limit' } });
      const id = `${name}-${seen.length}`;
      if (path === '/v1/embeddings') {
        return json(res, 200, {
          object: 'list',
          model,
          // The openai client asks for base64 (packed float32) unless told otherwise.
          data: [
            {
              object: 'embedding',
              index: 0,
              embedding:
                body.encoding_format === 'base64'
                  ? Buffer.from(new Float32Array([0.1, 0.2, 0.3]).buffer).toString('base64')
                  : [0.1, 0.2, 0.3],
            },
          ],
          usage: usage && { prompt_tokens: promptTokens, total_tokens: promptTokens },
        });
      }
      const text = `${name} says ${words.join(' ')}`;
      if (path === '/v1/completions') {
        return json(res, 200, {
          id,
          object: 'text_completion',
          created: 1,
          model,
          choices: [{ index: 0, text, finish_reason: 'stop', logprobs: null }],
          usage,
        });
      }
      if (!stream) {
        return json(res, 200, {
          id,
          object: 'chat.completion',
          created: 1,
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
          usage,
        });
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const parts = [`${name} says`, ...words.map((w) => ` ${w}`)];
      const includeUsage =
        (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
      let i = 0;
      const event = (o2: unknown) => res.write(`data: ${JSON.stringify(o2)}\n\n`);
      const tick = () => {
        if (i < parts.length) {
          event({
            id,
            object: 'chat.completion.chunk',
            created: 1,
            model,
            choices: [{ index: 0, delta: { content: parts[i] }, finish_reason: null }],
          });
          i++;
          timer = setTimeout(tick, o.chunkDelayMs ?? 150);
          return;
        }
        event({
          id,
          object: 'chat.completion.chunk',
          created: 1,
          model,
          choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
        });
        if (includeUsage && usage)
          event({ id, object: 'chat.completion.chunk', created: 1, model, choices: [], usage });
        res.end('data: [DONE]\n\n');
        streamEndedAt = Date.now();
      };
      let timer = setTimeout(tick, 0);
      res.on('close', () => clearTimeout(timer));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    name,
    address: `127.0.0.1:${port}`,
    seen,
    mode: (m) => (mode = m),
    lastStreamEndedAt: () => streamEndedAt,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
