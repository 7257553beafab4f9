/**
 * Injected randomness (STYLE.md: domain code takes randomness from an `Rng`). A seeded sfc32
 * generator: the same seed gives the same sequence on every platform, so simulations and tests
 * replay exactly. Not for secrets — use node:crypto for tokens and keys.
 */
export interface Rng {
  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number;
  /** Uniform integer in [minInclusive, maxInclusive]; both must be safe integers. */
  int(minInclusive: number, maxInclusive: number): number;
  /** Uniform in [min, max). */
  float(min: number, max: number): number;
  /** Normally distributed (Box–Muller); `stdDev` 0 returns `mean`. */
  normal(mean: number, stdDev: number): number;
  /** One element, uniformly. */
  pick<T>(items: readonly T[]): T;
  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[];
  /** True with probability `p` (0 never, 1 always). */
  chance(p: number): boolean;
  /**
   * An independent sub-stream derived from this stream's seed and `label` only, so it does not
   * depend on how many values the parent has drawn (forking the same label twice gives the same
   * stream). Lets each component own its stream without perturbing the others. The child's seed
   * is `"<parent seed>/<label>"`, so `createRng(child.seed)` recreates it.
   */
  fork(label: string): Rng;
  /** The seed as given (numbers are stringified; `createRng(7)` equals `createRng('7')`). */
  readonly seed: string;
}

const TWO_POW_32 = 0x1_0000_0000;

/** cyrb128: spreads a string of any length over 128 bits of sfc32 state. */
function hashSeed(seed: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < seed.length; i++) {
    const k = seed.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): passes PractRand, 128-bit state. */
function sfc32(state: [number, number, number, number]): () => number {
  let [a, b, c, d] = state;
  const nextU32 = (): number => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // The first outputs still carry structure from the hash; discarding them is the usual warm-up.
  for (let i = 0; i < 15; i++) nextU32();
  return nextU32;
}

function requireFinite(what: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`rng.${what}: expected a finite number, got ${value}`);
}

/** Creates a deterministic generator; any string or number works as a seed. */
export function createRng(seed: number | string): Rng {
  const seedText = String(seed);
  const u32 = sfc32(hashSeed(seedText));

  const next = (): number => u32() / TWO_POW_32;

  const int = (min: number, max: number): number => {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max)) {
      throw new RangeError(`rng.int: bounds must be safe integers, got (${min}, ${max})`);
    }
    if (min > max) throw new RangeError(`rng.int: min (${min}) is greater than max (${max})`);
    const range = max - min + 1;
    if (range > 2 ** 53) {
      throw new RangeError(`rng.int: range (${min}, ${max}) is wider than 2^53 values`);
    }
    if (range <= TWO_POW_32) {
      // Rejection sampling: a plain modulo would favour the low values when range ∤ 2^32.
      const limit = TWO_POW_32 - (TWO_POW_32 % range);
      let x = u32();
      while (x >= limit) x = u32();
      return min + (x % range);
    }
    const fraction53 = ((u32() >>> 5) * 0x400_0000 + (u32() >>> 6)) / 2 ** 53;
    return min + Math.floor(fraction53 * range);
  };

  const rng: Rng = {
    seed: seedText,
    next,
    int,
    float(min, max) {
      requireFinite('float', min);
      requireFinite('float', max);
      if (min > max) throw new RangeError(`rng.float: min (${min}) is greater than max (${max})`);
      return min + next() * (max - min);
    },
    normal(mean, stdDev) {
      requireFinite('normal', mean);
      requireFinite('normal', stdDev);
      if (stdDev < 0) throw new RangeError(`rng.normal: stdDev must be >= 0, got ${stdDev}`);
      // Always two draws per call (the spare is discarded) so call counts stay easy to reason about.
      const u1 = 1 - next(); // (0, 1]: keeps log() finite
      const u2 = next();
      return mean + stdDev * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    },
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new RangeError('rng.pick: cannot pick from an empty list');
      return items[int(0, items.length - 1)];
    },
    shuffle<T>(items: T[]): T[] {
      for (let i = items.length - 1; i > 0; i--) {
        const j = int(0, i);
        const tmp = items[i];
        items[i] = items[j];
        items[j] = tmp;
      }
      return items;
    },
    chance(p) {
      if (!(p >= 0 && p <= 1)) throw new RangeError(`rng.chance: p must be within [0, 1], got ${p}`);
      return next() < p;
    },
    fork: (label) => createRng(`${seedText}/${label}`),
  };
  return rng;
}
