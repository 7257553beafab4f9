/**
 * Per-model figures of an AILB instance: requests, errors, prompt and completion tokens,
 * latency and time to first byte (histograms), for the gateway's stats endpoint; the counters
 * also go into the instance's stats (heartbeats) as `model.<name>.<counter>`. The number of
 * models tracked is capped: clients choose model names, and memory must not follow them.
 */
import { Histogram } from '../runtime/histogram.js';
import type { StatsCollector } from '../runtime/stats.js';

const MAX_MODELS = 200;
const OTHER = '(other)';

interface PerModel {
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  estimatedTokens: number;
  latency: Histogram;
  firstByte: Histogram;
}

export interface ModelOutcome {
  ok: boolean;
  latencyMs: number;
  /** Time to the first body byte (0 when none came). */
  firstByteMs: number;
  promptTokens: number;
  completionTokens: number;
  estimated: boolean;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export class ModelStats {
  private readonly models = new Map<string, PerModel>();

  constructor(private readonly stats: StatsCollector) {}

  private entry(model: string): [string, PerModel] {
    let name = model;
    let m = this.models.get(name);
    if (!m && this.models.size >= MAX_MODELS) {
      name = OTHER;
      m = this.models.get(name);
    }
    if (!m) {
      m = {
        requests: 0,
        errors: 0,
        promptTokens: 0,
        completionTokens: 0,
        estimatedTokens: 0,
        latency: new Histogram(),
        firstByte: new Histogram(),
      };
      this.models.set(name, m);
    }
    return [name, m];
  }

  record(model: string, o: ModelOutcome): void {
    const [name, m] = this.entry(model);
    m.requests++;
    if (!o.ok) m.errors++;
    m.promptTokens += o.promptTokens;
    m.completionTokens += o.completionTokens;
    if (o.estimated) m.estimatedTokens += o.promptTokens + o.completionTokens;
    m.latency.record(o.latencyMs);
    if (o.firstByteMs > 0) m.firstByte.record(o.firstByteMs);
    const p = `model.${name}.`;
    this.stats.count(`${p}requests`);
    if (!o.ok) this.stats.count(`${p}errors`);
    if (o.promptTokens) this.stats.count(`${p}prompt_tokens`, o.promptTokens);
    if (o.completionTokens) this.stats.count(`${p}completion_tokens`, o.completionTokens);
    this.stats.count(`${p}latency_ms_total`, Math.round(o.latencyMs));
  }

  /** Everything, per model, for the stats endpoint. */
  snapshot(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, m] of this.models) {
      out[name] = {
        requests: m.requests,
        errors: m.errors,
        prompt_tokens: m.promptTokens,
        completion_tokens: m.completionTokens,
        estimated_tokens: m.estimatedTokens,
        latency_ms: {
          avg: round(m.latency.mean),
          p50: round(m.latency.quantile(0.5)),
          p95: round(m.latency.quantile(0.95)),
          p99: round(m.latency.quantile(0.99)),
        },
        first_byte_ms: { p50: round(m.firstByte.quantile(0.5)), p99: round(m.firstByte.quantile(0.99)) },
      };
    }
    return out;
  }
}
