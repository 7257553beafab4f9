/**
 * The AILB's pure parts: usage from JSON and event streams (or an estimate), per-caller token
 * and request budgets, and the order in which backends and fallbacks are tried for a model.
 */
import { describe, expect, it } from 'vitest';
import { ailbConfigSchema } from '../../services/modules/ailb/config.js';
import { BudgetTable, KeyBudget } from '../../services/modules/ailb/key-budget.js';
import {
  candidatesFor,
  listedModels,
  modelRank,
  type ModelBackend,
} from '../../services/modules/ailb/model-routing.js';
import { estimateTokens, promptChars, UsageTap } from '../../services/modules/ailb/usage.js';
import { Backend } from '../../services/modules/common/http/backend-pool.js';

const sse = (events: unknown[]) =>
  events.map((e) => `data: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`).join('');

describe('UsageTap', () => {
  it('reads usage from a JSON body', () => {
    const tap = new UsageTap('json');
    const body = JSON.stringify({
      choices: [{ message: { content: 'hi' } }],
      usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
    });
    tap.feed(Buffer.from(body.slice(0, 10)));
    tap.feed(Buffer.from(body.slice(10)));
    expect(tap.finish(1000)).toEqual({
      promptTokens: 12,
      completionTokens: 3,
      totalTokens: 15,
      estimated: false,
    });
  });

  it('reads usage from the last event of a stream, however the bytes are split', () => {
    const text = sse([
      { choices: [{ delta: { content: 'Hello' } }] },
      { choices: [{ delta: { content: ' world' } }] },
      { choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } },
      '[DONE]',
    ]);
    for (const size of [1, 5, 64, text.length]) {
      const tap = new UsageTap('sse');
      for (let i = 0; i < text.length; i += size) tap.feed(Buffer.from(text.slice(i, i + size)));
      expect(tap.finish(0)).toEqual({
        promptTokens: 5,
        completionTokens: 2,
        totalTokens: 7,
        estimated: false,
      });
      expect(tap.events).toBe(3);
    }
  });

  it('estimates about four characters per token when the backend reports nothing', () => {
    const tap = new UsageTap('sse');
    tap.feed(Buffer.from(sse([{ choices: [{ delta: { content: 'x'.repeat(40) } }] }, '[DONE]'])));
    expect(tap.finish(100)).toEqual({
      promptTokens: 25,
      completionTokens: 10,
      totalTokens: 35,
      estimated: true,
    });
    const text = new UsageTap('json');
    text.feed(Buffer.from(JSON.stringify({ choices: [{ text: 'y'.repeat(9) }] })));
    expect(text.finish(0)).toMatchObject({ completionTokens: 3, estimated: true });
    expect(estimateTokens(0)).toBe(0);
    expect(
      promptChars({
        messages: [
          { role: 'user', content: 'abcd' },
          { role: 'user', content: [{ type: 'text', text: 'ef' }] },
        ],
      }),
    ).toBe(6);
    expect(promptChars({ prompt: ['ab', 'cd'] })).toBe(4);
    expect(promptChars({ input: 'embed me' })).toBe(8);
  });
});

describe('KeyBudget', () => {
  it('admits while tokens remain, takes actual usage afterwards, and says when to retry', () => {
    const b = new KeyBudget({ tokensPerMinute: 600, requestsPerMinute: 0 }, 0);
    expect(b.admit(0)).toEqual({ ok: true });
    b.consume(900, 0);
    expect(b.tokensLeft(0)).toBe(-300);
    // 10 tokens per second: 301 tokens to get back above zero.
    expect(b.admit(0)).toEqual({ ok: false, limit: 'tokens', retryAfterMs: 30_100 });
    expect(b.admit(30_100)).toEqual({ ok: true });
  });

  it('limits requests per minute', () => {
    const b = new KeyBudget({ tokensPerMinute: 0, requestsPerMinute: 2 }, 0);
    expect(b.admit(0).ok).toBe(true);
    expect(b.admit(0).ok).toBe(true);
    expect(b.admit(0)).toEqual({ ok: false, limit: 'requests', retryAfterMs: 30_000 });
    expect(b.admit(30_000).ok).toBe(true);
  });

  it('keeps one budget per caller, renewed when its limits change, and bounded in number', () => {
    const t = new BudgetTable(2);
    const l = { tokensPerMinute: 10, requestsPerMinute: 0 };
    const a = t.get('a', l, 0);
    expect(t.get('a', l, 0)).toBe(a);
    expect(t.get('a', { ...l, tokensPerMinute: 20 }, 0)).not.toBe(a);
    t.get('b', l, 0);
    t.get('c', l, 0);
    expect(t.get('a', { ...l, tokensPerMinute: 20 }, 0).tokensLeft(0)).toBe(20);
  });
});

describe('model routing', () => {
  const config = ailbConfigSchema.parse({
    backends: [
      { name: 'exact', address: '127.0.0.1:1', models: ['gpt-4o'] },
      { name: 'family', address: '127.0.0.1:2', models: ['gpt-4*'] },
      { name: 'any', address: '127.0.0.1:3', models: ['*'] },
      { name: 'mini', address: '127.0.0.1:4', models: ['gpt-4o-mini'], weight: 2 },
      { name: 'mini2', address: '127.0.0.1:5', models: ['gpt-4o-mini'] },
    ],
    fallbacks: [{ model: 'gpt-4o', to: ['gpt-4o-mini'] }],
    maxAttempts: 8,
  });
  const settings = {
    maxIdle: 1,
    idleTimeoutMs: 1,
    connectTimeoutMs: 1,
    responseTimeoutMs: 1,
    bodyIdleTimeoutMs: 1,
    maxResponseHeadBytes: 1024,
  };
  const backends: ModelBackend[] = config.backends.map((spec) => ({
    spec,
    backend: new Backend({ name: spec.name, address: spec.address, weight: spec.weight }, settings, 0),
  }));

  it('ranks exact names above patterns and longer patterns above shorter ones', () => {
    expect(modelRank(['gpt-4o'], 'gpt-4o')).toBeGreaterThan(modelRank(['gpt-4*'], 'gpt-4o'));
    expect(modelRank(['gpt-4*'], 'gpt-4o')).toBeGreaterThan(modelRank(['*'], 'gpt-4o'));
    expect(modelRank(['llama-*'], 'gpt-4o')).toBe(-1);
  });

  it('tries the model’s backends, most specific first, then its fallbacks with the model rewritten', () => {
    const { candidates, served } = candidatesFor('gpt-4o', backends, config, 0, 0);
    expect(served).toBe(true);
    expect(candidates.map((c) => `${c.spec.name}:${c.model}${c.fallback ? ' (fallback)' : ''}`)).toEqual([
      'exact:gpt-4o',
      'family:gpt-4o',
      'any:gpt-4o',
      // Least outstanding requests per weight: mini (weight 2) first.
      'mini:gpt-4o-mini (fallback)',
      'mini2:gpt-4o-mini (fallback)',
      'family:gpt-4o-mini (fallback)',
      'any:gpt-4o-mini (fallback)',
    ]);
    expect(candidatesFor('gpt-4o', backends, { ...config, maxAttempts: 2 }, 0, 0).candidates).toHaveLength(2);
  });

  it('skips backends out of rotation and balances equals', () => {
    const exact = backends[0].backend;
    exact.healthy = false;
    expect(candidatesFor('gpt-4o', backends, config, 0, 0).candidates[0].spec.name).toBe('family');
    exact.healthy = true;
    const first = new Set(
      [0, 1, 2, 3].map(
        (turn) =>
          candidatesFor('gpt-4o-mini', backends, { ...config, balancing: 'round_robin' }, 0, turn)
            .candidates[0].spec.name,
      ),
    );
    expect(first).toEqual(new Set(['mini', 'mini2']));
    backends[3].backend.active = 5;
    expect(candidatesFor('gpt-4o-mini', backends, config, 0, 0).candidates[0].spec.name).toBe('mini2');
    backends[3].backend.active = 0;
  });

  it('lists exact model names (patterns are asked of the backends)', () => {
    expect([...listedModels(config).keys()].sort()).toEqual(['gpt-4o', 'gpt-4o-mini']);
    const none = candidatesFor('x', backends.slice(0, 2), config, 0, 0);
    expect(none).toEqual({ candidates: [], served: false });
  });
});
