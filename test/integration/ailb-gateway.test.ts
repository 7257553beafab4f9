/**
 * The AILB gateway with the `openai` npm client against local OpenAI-compatible backends:
 * routing by model (exact names and patterns), /v1/models, fallbacks when a backend fails,
 * streaming that arrives while the backend is still producing, token and request limits per
 * API key, completions and embeddings, and per-model stats.
 */
import { afterEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { ailbPlugin } from '../../services/modules/ailb/plugin.js';
import { createServer } from 'node:net';
import { createHttpHarness, limit, readUntil } from './alb-fixture.js';
import { startAiBackend, type AiBackend } from './ailb-fixture.js';

const h = createHttpHarness();
const backends: AiBackend[] = [];
afterEach(async () => {
  await h.closeAll();
  await Promise.all(backends.splice(0).map((b) => b.close()));
});

async function backend(name: string, o: Parameters<typeof startAiBackend>[1] = {}): Promise<AiBackend> {
  const b = await startAiBackend(name, o);
  backends.push(b);
  return b;
}

/** An address where nothing listens (bound a moment ago, then closed). */
async function deadAddress(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `127.0.0.1:${port}`;
}

const client = (url: string, apiKey = 'sk-test-client') =>
  new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 10_000 });

const say = async (c: OpenAI, model: string) => {
  const r = await c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }] });
  return r.choices[0].message.content ?? '';
};

describe('AILB gateway', () => {
  it('routes by model (exact names before patterns) and lists the models it can serve', async () => {
    const llama = await backend('llama', { models: ['llama-3-8b', 'llama-3-70b', 'mistral-7b'] });
    const gpt = await backend('gpt');
    const any = await backend('any');
    const gw = await h.instance(ailbPlugin, {
      backends: [
        { name: 'llama', address: llama.address, models: ['llama-*'], gpu: true },
        { name: 'gpt', address: gpt.address, models: ['gpt-4o', 'gpt-4o-mini'] },
        { name: 'any', address: any.address, models: ['gpt-*'] },
      ],
    });
    const c = client(gw.url);
    expect(await say(c, 'llama-3-70b')).toBe('llama says one two three');
    expect(await say(c, 'gpt-4o')).toBe('gpt says one two three');
    expect(await say(c, 'gpt-3.5-turbo')).toBe('any says one two three');
    expect(llama.seen[0]).toMatchObject({ path: '/v1/chat/completions', model: 'llama-3-70b' });
    // The client's key goes through when a backend has none of its own.
    expect(llama.seen[0].authorization).toBe('Bearer sk-test-client');
    const missing = await c.chat.completions
      .create({ model: 'claude-3', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect((missing as InstanceType<typeof OpenAI.NotFoundError>).message).toMatch(/claude-3 is not served/);
    const models = await c.models.list();
    const ids = models.data.map((m) => m.id).sort();
    // Exact names from the config, and the llama backend's own models that match "llama-*".
    expect(ids).toEqual(['gpt-4o', 'gpt-4o-mini', 'llama-3-70b', 'llama-3-8b']);
    expect((await c.models.retrieve('llama-3-8b')).owned_by).toBe('llama');
    expect(await c.models.retrieve('nope').catch((e: unknown) => e)).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('falls back to another backend, then to a fallback model, when backends fail', async () => {
    const [a, b, mini] = await Promise.all([backend('a'), backend('b'), backend('mini')]);
    const gw = await h.instance(ailbPlugin, {
      balancing: 'round_robin',
      backends: [
        { name: 'a', address: a.address, models: ['gpt-4o'] },
        { name: 'b', address: b.address, models: ['gpt-4o'], apiKey: 'sk-backend-b' },
        { name: 'mini', address: mini.address, models: ['gpt-4o-mini'] },
      ],
      fallbacks: [{ model: 'gpt-4o', to: ['gpt-4o-mini'] }],
      passiveEjection: { consecutiveFailures: 0 },
    });
    const c = client(gw.url);
    a.mode('fail');
    for (let i = 0; i < 4; i++) expect(await say(c, 'gpt-4o')).toBe('b says one two three');
    // b gets its own key, not the client's.
    expect(b.seen[0].authorization).toBe('Bearer sk-backend-b');
    b.mode('busy');
    const { data, response } = await c.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    expect(data.choices[0].message.content).toBe('mini says one two three');
    expect(response.headers.get('x-ailb-model')).toBe('gpt-4o-mini');
    expect(response.headers.get('x-ailb-backend')).toBe('mini');
    expect(mini.seen.at(-1)?.model).toBe('gpt-4o-mini');
    // Everything failing: the last backend's answer reaches the client.
    mini.mode('fail');
    const err = await say(c, 'gpt-4o').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(gw.counter('model_fallbacks')).toBeGreaterThanOrEqual(2);
  });

  it('passes a stream through as it is produced', async () => {
    const slow = await backend('slow', { chunkDelayMs: 250, words: ['a', 'b', 'c'] });
    const gw = await h.instance(ailbPlugin, {
      backends: [{ name: 'slow', address: slow.address, models: ['*'] }],
    });
    const started = Date.now();
    const stream = await client(gw.url).chat.completions.create({
      model: 'stream-model',
      messages: [{ role: 'user', content: 'count' }],
      stream: true,
    });
    const arrivals: Array<{ at: number; text: string }> = [];
    for await (const chunk of stream)
      arrivals.push({ at: Date.now(), text: chunk.choices[0]?.delta?.content ?? '' });
    expect(arrivals.map((x) => x.text).join('')).toBe('slow says a b c');
    const endedAt = slow.lastStreamEndedAt();
    expect(endedAt).toBeGreaterThan(0);
    // The first chunk was in the client's hands long before the backend finished (4 × 250 ms).
    expect(arrivals[0].at).toBeLessThan(endedAt - 500);
    expect(arrivals[0].at - started).toBeLessThan(500);
    // No usage in the stream: the gateway estimated the tokens.
    expect(gw.counter('tokens_estimated')).toBeGreaterThan(0);
    expect(gw.counter('model.stream-model.requests')).toBe(1);
  });

  it('limits tokens per minute per API key (429 with Retry-After) from the usage reported', async () => {
    const m = await backend('m', { usage: [10, 5] });
    const gw = await h.instance(ailbPlugin, {
      backends: [{ name: 'm', address: m.address, models: ['*'] }],
      apiKeys: [
        { name: 'team-a', key: 'sk-team-a-secret', tokensPerMinute: 20 },
        { name: 'team-b', key: 'sk-team-b-secret' },
      ],
      limits: { tokensPerMinute: 1000 },
    });
    const a = client(gw.url, 'sk-team-a-secret');
    // 20 tokens: the first request leaves 5, the second takes the budget to -10.
    await say(a, 'x');
    await say(a, 'x');
    const refused = await say(a, 'x').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const r = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(r.message).toMatch(/tokens per minute exceeded for key:team-a/);
    expect(Number(r.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Another key has its own budget.
    expect(await say(client(gw.url, 'sk-team-b-secret'), 'x')).toBe('m says one two three');
    expect(m.seen.length).toBe(3);
    expect(gw.counter('token_limited')).toBe(1);
    expect(gw.counter('tokens_total')).toBe(45);
  });

  it('requires a listed API key when told to, and applies the module rate limits per key', async () => {
    const m = await backend('m');
    const gw = await h.instance(
      ailbPlugin,
      {
        backends: [{ name: 'm', address: m.address, models: ['*'] }],
        apiKeys: [
          { name: 'ops', keySha256: 'd0b4bfb0c0c4f4c05e4ba1e2cf8c3b4cfa0c2cd0d4dc1af7d82e3b6b4fd2ba45' },
          { name: 'dev', key: 'sk-dev-12345' },
        ],
        requireApiKey: true,
      },
      [],
      [limit('per-key', { requestsPerMinute: 2 })],
    );
    expect(await say(client(gw.url, 'sk-wrong-key'), 'x').catch((e: unknown) => e)).toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
    const dev = client(gw.url, 'sk-dev-12345');
    await say(dev, 'x');
    await say(dev, 'x');
    expect(await say(dev, 'x').catch((e: unknown) => e)).toBeInstanceOf(OpenAI.RateLimitError);
    expect(gw.counter('unauthorized')).toBe(1);
    expect(gw.counter('rate_limited')).toBe(1);
  });

  it('serves completions and embeddings, and reports per-model stats', async () => {
    const m = await backend('m', { usage: [7, 3] });
    const gw = await h.instance(ailbPlugin, {
      backends: [{ name: 'm', address: m.address, models: ['text-*'] }],
    });
    const c = client(gw.url);
    const completion = await c.completions.create({ model: 'text-davinci', prompt: 'say something' });
    expect(completion.choices[0].text).toBe('m says one two three');
    const emb = await c.embeddings.create({ model: 'text-embed', input: 'vector me' });
    expect(emb.data[0].embedding.map((x) => Math.round(x * 1000) / 1000)).toEqual([0.1, 0.2, 0.3]);
    const stats = (await (await fetch(`${gw.url}/ailb/stats`)).json()) as {
      models: Record<
        string,
        { requests: number; prompt_tokens: number; completion_tokens: number; latency_ms: { p99: number } }
      >;
      backends: Array<{ name: string; state: string; requests: number }>;
    };
    expect(stats.models['text-davinci']).toMatchObject({
      requests: 1,
      prompt_tokens: 7,
      completion_tokens: 3,
    });
    expect(stats.models['text-embed']).toMatchObject({ requests: 1, prompt_tokens: 7, completion_tokens: 0 });
    expect(stats.models['text-davinci'].latency_ms.p99).toBeGreaterThan(0);
    expect(stats.backends).toEqual([{ name: 'm', state: 'healthy', active: 0, requests: 2, failures: 0 }]);
    expect(gw.counter('model.text-davinci.prompt_tokens')).toBe(7);
    expect(gw.counter('model.text-davinci.completion_tokens')).toBe(3);
    // Malformed requests get OpenAI-shaped errors.
    const bad = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const noModel = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    expect(noModel.status).toBe(400);
  });

  it('moves on from a backend that refuses connections, and answers 502 when none is left', async () => {
    const live = await backend('live');
    const dead = await deadAddress();
    const gw = await h.instance(ailbPlugin, {
      balancing: 'round_robin',
      backends: [
        { name: 'dead', address: dead, models: ['m'] },
        { name: 'live', address: live.address, models: ['m'] },
      ],
    });
    const c = client(gw.url);
    for (let i = 0; i < 4; i++) expect(await say(c, 'm')).toBe('live says one two three');
    expect(gw.counter('backend_retries')).toBeGreaterThanOrEqual(1);
    const only = await h.instance(ailbPlugin, { backends: [{ name: 'dead', address: dead, models: ['m'] }] });
    const err = await say(client(only.url), 'm').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(
      /backend dead failed: ECONNREFUSED/,
    );
  });

  it('refuses oversized bodies, unknown endpoints and malformed HTTP without falling over', async () => {
    const m = await backend('m');
    const gw = await h.instance(ailbPlugin, {
      backends: [{ name: 'm', address: m.address, models: ['*'] }],
      maxRequestBodyBytes: 2048,
      timeouts: { clientHeadersMs: 500 },
    });
    const big = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'y'.repeat(5000) }] }),
    }).catch((e: unknown) => e);
    // A 413, or the connection cut while the client was still sending.
    if (big instanceof Response) expect(big.status).toBe(413);
    expect((await fetch(`${gw.url}/v2/other`)).status).toBe(404);
    expect((await fetch(`${gw.url}/v1/chat/completions`)).status).toBe(405);
    const s = await h.raw(gw.port);
    s.write('NOT HTTP AT ALL\r\n\r\n');
    const r = await readUntil(s, () => false, 2000);
    expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.closed).toBe(true);
    const slow = await h.raw(gw.port);
    slow.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n');
    const t = setInterval(() => slow.writable && slow.write('X-a: b\r\n'), 100);
    const rs = await readUntil(slow, () => false, 4000);
    clearInterval(t);
    expect(rs.closed).toBe(true);
    expect(rs.ms).toBeLessThan(2500);
    expect(await say(client(gw.url), 'x')).toBe('m says one two three');
  });
});
