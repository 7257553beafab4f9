/**
 * The OpenAI-compatible demo backend of `mpctl dev` (the AILB's backend): /v1/models,
 * /v1/chat/completions and /v1/completions (with and without `stream: true`, as server-sent
 * events ending in `data: [DONE]`), and /v1/embeddings (float or base64). Content and token
 * counts are deterministic fakes (openai-fake.ts); errors have OpenAI's shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listenHttp, readBody, sendJson, type DemoServer } from './http-server.js';
import {
  chatReply,
  completionReply,
  countTokens,
  embedding,
  embeddingBase64,
  promptTokens,
  tokenPieces,
  usage,
  type ChatMessage,
} from './openai-fake.js';

/** Options of startOpenAiDemo. */
export interface OpenAiDemoOptions {
  /** Named in replies and as the models' owner (default "openai-demo"). */
  name?: string;
  /** Chat/completion models (default demo-chat); embedding models (default demo-embed). */
  chatModels?: string[];
  embeddingModels?: string[];
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Seconds since the epoch for `created` (default: the clock). */
  nowSeconds?: () => number;
}

/** A running demo backend. */
export interface OpenAiDemoServer extends DemoServer {
  /** Every model it serves. */
  models: string[];
}

type Json = Record<string, unknown>;

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

const CREATED = 1_700_000_000;

/** Starts the demo backend. */
export async function startOpenAiDemo(options: OpenAiDemoOptions = {}): Promise<OpenAiDemoServer> {
  const name = options.name ?? 'openai-demo';
  const chatModels = options.chatModels ?? ['demo-chat'];
  const embeddingModels = options.embeddingModels ?? ['demo-embed'];
  const models = [...chatModels, ...embeddingModels];
  const now = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  let sequence = 0;

  const model = (body: Json, allowed: readonly string[]): string => {
    const id = body.model;
    if (typeof id !== 'string' || !id)
      throw new ApiError(400, 'you must provide a model parameter', 'missing_model', 'model');
    if (!allowed.includes(id)) {
      throw new ApiError(
        404,
        `The model \`${id}\` does not exist or you do not have access to it. This backend serves: ${allowed.join(', ')}`,
        'model_not_found',
        'model',
      );
    }
    return id;
  };
  const modelObject = (id: string) => ({ id, object: 'model', created: CREATED, owned_by: name });

  const chat = (body: Json, res: ServerResponse) => {
    const id = model(body, chatModels);
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      throw new ApiError(400, 'messages must be a non-empty array', 'invalid_messages', 'messages');
    }
    const messages = body.messages as ChatMessage[];
    const maxTokens = numberField(body, 'max_completion_tokens') ?? numberField(body, 'max_tokens');
    const { pieces, cut } = tokenPieces(chatReply(name, id, messages), maxTokens);
    const text = pieces.join('');
    const used = usage(promptTokens(messages), countTokens(text));
    const base = {
      id: `chatcmpl-demo-${++sequence}`,
      created: now(),
      model: id,
      system_fingerprint: 'fp_demo',
    };
    const finish = cut ? 'length' : 'stop';
    if (body.stream !== true) {
      return sendJson(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: text, refusal: null },
            logprobs: null,
            finish_reason: finish,
          },
        ],
        usage: used,
      });
    }
    const chunk = (delta: Json, finishReason: string | null) => ({
      ...base,
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    });
    const events: Json[] = [
      chunk({ role: 'assistant', content: '' }, null),
      ...pieces.map((p) => chunk({ content: p }, null)),
      chunk({}, finish),
    ];
    if (includeUsage(body))
      events.push({ ...base, object: 'chat.completion.chunk', choices: [], usage: used });
    sendEvents(res, events);
  };

  const completion = (body: Json, res: ServerResponse) => {
    const id = model(body, chatModels);
    const raw = body.prompt;
    const prompt =
      typeof raw === 'string'
        ? raw
        : Array.isArray(raw)
          ? raw.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('\n')
          : '';
    const { pieces, cut } = tokenPieces(completionReply(name, id, prompt), numberField(body, 'max_tokens'));
    const text = pieces.join('');
    const used = usage(countTokens(prompt), countTokens(text));
    const base = { id: `cmpl-demo-${++sequence}`, object: 'text_completion', created: now(), model: id };
    const finish = cut ? 'length' : 'stop';
    if (body.stream !== true) {
      return sendJson(res, 200, {
        ...base,
        choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
        usage: used,
      });
    }
    const chunk = (piece: string, finishReason: string | null) => ({
      ...base,
      choices: [{ index: 0, text: piece, logprobs: null, finish_reason: finishReason }],
    });
    const events: Json[] = [...pieces.map((p) => chunk(p, null)), chunk('', finish)];
    if (includeUsage(body)) events.push({ ...base, choices: [], usage: used });
    sendEvents(res, events);
  };

  const embeddings = (body: Json, res: ServerResponse) => {
    const id = model(body, embeddingModels);
    const raw = body.input;
    const inputs = (Array.isArray(raw) && raw.every((x) => typeof x !== 'number') ? raw : [raw]).map((x) =>
      typeof x === 'string' ? x : JSON.stringify(x),
    );
    if (raw === undefined || inputs.length === 0)
      throw new ApiError(400, 'input is required', 'missing_input', 'input');
    const dimensions = numberField(body, 'dimensions') ?? 16;
    if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > 4096) {
      throw new ApiError(
        400,
        'dimensions must be an integer from 1 to 4096',
        'invalid_dimensions',
        'dimensions',
      );
    }
    const base64 = body.encoding_format === 'base64';
    sendJson(res, 200, {
      object: 'list',
      data: inputs.map((text, index) => {
        const values = embedding(text, dimensions);
        return { object: 'embedding', index, embedding: base64 ? embeddingBase64(values) : values };
      }),
      model: id,
      usage: {
        prompt_tokens: inputs.reduce((n, t) => n + countTokens(t), 0),
        total_tokens: inputs.reduce((n, t) => n + countTokens(t), 0),
      },
    });
  };

  const routes: Record<string, (body: Json, res: ServerResponse) => void> = {
    'POST /v1/chat/completions': chat,
    'POST /v1/completions': completion,
    'POST /v1/embeddings': embeddings,
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://demo.invalid').pathname.replace(/\/+$/, '') || '/';
    try {
      if (req.method === 'GET' && path === '/v1/models') {
        return sendJson(res, 200, { object: 'list', data: models.map(modelObject) });
      }
      if (req.method === 'GET' && path.startsWith('/v1/models/')) {
        const id = decodeURIComponent(path.slice('/v1/models/'.length));
        if (!models.includes(id))
          throw new ApiError(404, `The model \`${id}\` does not exist`, 'model_not_found', 'model');
        return sendJson(res, 200, modelObject(id));
      }
      if (req.method === 'GET' && (path === '/' || path === '/healthz')) {
        return sendJson(res, 200, { status: 'ok', service: name, models });
      }
      const route = routes[`${req.method} ${path}`];
      if (!route) {
        const known = Object.keys(routes).some((k) => k.endsWith(` ${path}`));
        throw new ApiError(
          known ? 405 : 404,
          known ? `use POST for ${path}` : `unknown path ${req.method} ${path}`,
          known ? 'method_not_allowed' : 'unknown_url',
        );
      }
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        throw new ApiError(400, 'the request body must be JSON', 'invalid_json');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new ApiError(400, 'the request body must be a JSON object', 'invalid_json');
      }
      route(body as Json, res);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, (e as Error).message, 'internal_error');
      if (res.headersSent) return res.destroy();
      sendJson(res, err.status, {
        error: {
          message: err.message,
          type: err.status >= 500 ? 'server_error' : 'invalid_request_error',
          param: err.param ?? null,
          code: err.code,
        },
      });
    }
  };

  const server = await listenHttp(
    (req, res) => void handle(req, res),
    options.host ?? '127.0.0.1',
    options.port ?? 0,
  );
  return { ...server, models };
}

function numberField(body: Json, field: string): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ApiError(400, `${field} must be a number`, 'invalid_type', field);
  return v;
}

function includeUsage(body: Json): boolean {
  const o = body.stream_options;
  return typeof o === 'object' && o !== null && (o as Json).include_usage === true;
}

/** Server-sent events, one `data:` line per event, then `data: [DONE]`. */
function sendEvents(res: ServerResponse, events: readonly unknown[]): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  for (const event of events) res.write(`data: ${JSON.stringify(event)}\n\n`);
  res.end('data: [DONE]\n\n');
}
