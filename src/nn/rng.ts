// Deterministic pseudo-random numbers: the one generator (mulberry32: 32-bit state, passes
// gjrand/PractRand to 2^32 outputs, plenty for permutations, crops and weight init) behind data
// order, augmentation, sampling, diffusion noise and every seeded initialisation, and the two ways
// to name a stream without shared state:
//  - integer keys: `mixSeed(seed, epoch, index, …)`, a murmur3-style mix, so (seed, epoch) or
//    (seed, epoch, sample index) are independent streams;
//  - a name: `nameSeed(seed, name)`, FNV-1a of "seed:name", for adapter tensors keyed by their
//    file key (src/peft/init.ts).
// Model inits that key streams by a tensor name's code units go through mixSeed with `nameKeys`;
// their folds differ (DiT: one flat key list, LLaMA/ViT: one mix per character) and are kept as
// they are, because the demo models and test goldens are made from them bit for bit.
/** murmur3's 32-bit finalizer: a bijective avalanche of one word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One 32-bit seed from integer keys (each taken mod 2^32, the high word of larger ones mixed in too). */
export function mixSeed(...keys: number[]): number {
  let h = 0x9e3779b9;
  for (const k of keys) {
    const lo = k >>> 0;
    const hi = Math.floor(k / 4294967296) >>> 0;
    h = fmix32((h ^ lo) + Math.imul(hi, 0x27d4eb2f) + 0x6a09e667);
  }
  return h;
}

/** FNV-1a over the UTF-16 code units. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The seed of the stream named `name` under `seed` (golden-tested adapter inits depend on its exact bits). */
function nameSeed(seed: number, name: string): number {
  return (hash32(`${seed}:${name}`) ^ Math.imul(seed | 0, 0x9e3779b1)) >>> 0;
}

/** A name as mixSeed keys: its UTF-16 code units. */
export function nameKeys(name: string): number[] {
  return Array.from(name, (ch) => ch.charCodeAt(0));
}

/** mulberry32: the generator behind every seeded stream here. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  static from(...keys: number[]): Rng {
    return new Rng(mixSeed(...keys));
  }

  /** The stream named `name` under `seed` (see nameSeed). */
  static named(seed: number, name: string): Rng {
    return new Rng(nameSeed(seed, name));
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [0, n), n ≤ 2^32, without modulo bias (rejection on the top sliver). */
  int(n: number): number {
    if (n <= 0) throw new RangeError(`Rng.int(${n})`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** A permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
}
