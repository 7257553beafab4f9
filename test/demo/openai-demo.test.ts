import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiDemo, type OpenAiDemoServer } from '../../services/demo/openai-demo.js';
import { countTokens, embedding, tokenPieces } from '../../services/demo/openai-fake.js';

// The official client against the demo backend: what the AILB's users will run.
describe('OpenAI demo backend', () => {
  let server: OpenAiDemoServer;
  let client: OpenAI;
  let base: string;

  beforeAll(async () => {
    server = await startOpenAiDemo({ name: 'demo-a', nowSeconds: () => 1_800_000_000 });
    base = `http://${server.address}/v1`;
    client = new OpenAI({ apiKey: 'sk-demo', baseURL: base, maxRetries: 0 });
  });
  afterAll(() => server.close());

  it('lists its models', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    expect(models).toEqual([
      { id: 'demo-chat', object: 'model', created: 1_700_000_000, owned_by: 'demo-a' },
      { id: 'demo-embed', object: 'model', created: 1_700_000_000, owned_by: 'demo-a' },
    ]);
    expect(await client.models.retrieve('demo-embed')).toMatchObject({ id: 'demo-embed' });
  });

  it('answers a chat completion with deterministic content and usage', async () => {
    const res = await client.chat.completions.create({
      model: 'demo-chat',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is MarchProxy?' },
      ],
    });
    const content = 'Hello from demo-a (demo-chat). You said: "What is MarchProxy?". This is a demo reply.';
    expect(res).toMatchObject({
      object: 'chat.completion',
      created: 1_800_000_000,
      model: 'demo-chat',
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content } }],
      usage: { prompt_tokens: 3 + (3 + 3) + (3 + 4), completion_tokens: countTokens(content) },
    });
    expect(res.usage?.total_tokens).toBe(
      (res.usage?.prompt_tokens ?? 0) + (res.usage?.completion_tokens ?? 0),
    );
  });

  it('streams a chat completion as SSE chunks that add up to the same content, with usage on request', async () => {
    const stream = await client.chat.completions.create({
      model: 'demo-chat',
      messages: [{ role: 'user', content: 'stream please' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let chunks = 0;
    let finish: string | null = null;
    let total = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      total = chunk.usage?.total_tokens ?? total;
    }
    expect(text).toBe('Hello from demo-a (demo-chat). You said: "stream please". This is a demo reply.');
    expect(chunks).toBeGreaterThan(5);
    expect(finish).toBe('stop');
    expect(total).toBe(3 + 3 + 2 + countTokens(text));
  });

  it('cuts at max_tokens with finish_reason length', async () => {
    const res = await client.chat.completions.create({
      model: 'demo-chat',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
    });
    expect(res.choices[0]).toMatchObject({
      finish_reason: 'length',
      message: { content: 'Hello from demo-a' },
    });
    expect(res.usage?.completion_tokens).toBe(5); // Hello, from, demo, -, a
  });

  it('answers legacy completions, streamed or not', async () => {
    const res = await client.completions.create({ model: 'demo-chat', prompt: 'Once upon a time' });
    expect(res.choices[0].text).toBe(
      ' and so demo-a (demo-chat) completes "Once upon a time" with a demo sentence.',
    );
    expect(res.usage).toMatchObject({ prompt_tokens: 4 });
    const stream = await client.completions.create({
      model: 'demo-chat',
      prompt: 'Once upon a time',
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(res.choices[0].text);
  });

  it('returns unit-length embeddings, the same for the same input, as floats and as base64', async () => {
    const res = await client.embeddings.create({ model: 'demo-embed', input: ['alpha', 'beta', 'alpha'] });
    expect(res.data).toHaveLength(3);
    const [a, b, a2] = res.data.map((d) => d.embedding);
    expect(a).toHaveLength(16);
    expect(a).not.toEqual(b);
    for (const [x, y] of a.map((v, i) => [v, a2[i]])) expect(x).toBeCloseTo(y, 5);
    expect(Math.hypot(...a)).toBeCloseTo(1, 4);
    expect(res.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
    const floats = await fetch(`${base}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'demo-embed', input: 'alpha', dimensions: 4, encoding_format: 'float' }),
    }).then((r) => r.json());
    expect(floats.data[0].embedding).toEqual(embedding('alpha', 4));
  });

  it('refuses unknown models and bad requests in OpenAI error shape', async () => {
    await expect(
      client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    await expect(client.chat.completions.create({ model: 'demo-chat', messages: [] })).rejects.toMatchObject({
      status: 400,
      param: 'messages',
    });
    const bad = await fetch(`${base}/chat/completions`, { method: 'POST', body: '{nope' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: {
        message: 'the request body must be JSON',
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_json',
      },
    });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/chat/completions`)).status).toBe(405);
  });

  it('splits text into stream pieces on whole words', () => {
    expect(tokenPieces('a b c', 2)).toEqual({ pieces: ['a', ' b'], cut: true });
    expect(tokenPieces('a b')).toEqual({ pieces: ['a', ' b'], cut: false });
  });
});
