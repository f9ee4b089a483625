// Autoregressive generation with a key/value cache: the prompt runs once, then each new token
// runs alone against the cached keys and values of every earlier position, so a step costs
// O(layers · D²) matmul work plus O(S) attention instead of recomputing the whole sequence.
// Sampling: greedy (argmax), or temperature-scaled softmax with optional nucleus (top-p)
// truncation (Holtzman et al. 2019), drawn from a seeded mulberry32 stream so runs repeat exactly.
import { tf } from '../backend/tf.js';
import { Rng } from '../nn/rng.js';

/** Keys and values of one layer for the positions seen so far: [B, Hkv, S, hd] each (after RoPE). */
export interface LayerKv {
  readonly k: tf.Tensor4D;
  readonly v: tf.Tensor4D;
}

export interface GenerateOptions {
  readonly maxNewTokens: number;
  /** Argmax at every step (also when temperature is 0). */
  readonly greedy?: boolean;
  /** Default 1. */
  readonly temperature?: number;
  /** Nucleus sampling threshold in (0, 1]; default 1 (no truncation). */
  readonly topP?: number;
  /** Default 0. */
  readonly seed?: number;
  /** Stop after emitting it (or any of them); default: the model's EOS ids (stopIds). null: never stop early. */
  readonly eosId?: number | readonly number[] | null;
  /** false recomputes the whole sequence every step (the reference the cache is tested against). */
  readonly kvCache?: boolean;
  /** Called with each new token as soon as it is chosen (streaming output, benchmarks). */
  readonly onToken?: (token: number, index: number) => void;
}

/** What generation needs from a causal LM. */
export interface CausalLm {
  readonly config: { readonly vocabSize: number; readonly eosTokenIds: readonly number[]; readonly generationEosIds?: readonly number[] };
  hidden(ids: tf.Tensor2D, past?: readonly LayerKv[] | null): { h: tf.Tensor2D; present: LayerKv[] };
  head(h: tf.Tensor2D): tf.Tensor2D;
}

/** The ids generation stops at by default: generation_config.json's eos_token_id, else config.json's (as transformers' GenerationConfig). */
export function stopIds(config: CausalLm['config']): readonly number[] {
  return config.generationEosIds ?? config.eosTokenIds;
}

/** Index of the largest value (the first one on ties, like torch.argmax). */
export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** Draws a token from logits [V] with temperature and top-p. */
function sampleToken(logits: Float32Array, temperature: number, topP: number, rng: Rng): number {
  let max = -Infinity;
  for (const z of logits) if (z > max) max = z;
  const probs = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += probs[i] = Math.exp((logits[i]! - max) / temperature);
  const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b);
  // Keep the smallest prefix of the sorted distribution whose mass reaches topP (always ≥ 1 token).
  let kept = 0;
  let mass = 0;
  while (kept < order.length && (kept === 0 || mass < topP * total)) mass += probs[order[kept++]!]!;
  let u = rng.float() * mass;
  for (let i = 0; i < kept; i++) {
    u -= probs[order[i]!]!;
    if (u < 0) return order[i]!;
  }
  return order[kept - 1]!;
}

async function lastLogits(model: CausalLm, ids: number[], past: readonly LayerKv[] | null): Promise<{ logits: Float32Array; present: LayerKv[] }> {
  // tidy keeps what it returns: the last position's logits and every layer's keys and values.
  const [logitsT, ...kv] = tf.tidy(() => {
    const input = tf.tensor2d(ids, [1, ids.length], 'int32');
    const { h, present } = model.hidden(input, past);
    const last = tf.slice(h, [ids.length - 1, 0], [1, h.shape[1]]); // [1, D]
    return [model.head(last), ...present.flatMap((l) => [l.k, l.v])];
  });
  const logits = (await logitsT!.data()) as Float32Array; // the one host read per token
  logitsT!.dispose();
  const present: LayerKv[] = [];
  for (let i = 0; i < kv.length; i += 2) present.push({ k: kv[i] as tf.Tensor4D, v: kv[i + 1] as tf.Tensor4D });
  return { logits, present };
}

function disposeKv(kv: readonly LayerKv[] | null): void {
  for (const l of kv ?? []) {
    l.k.dispose();
    l.v.dispose();
  }
}

/** New token ids after `promptIds`, stopping after maxNewTokens or once EOS was emitted. */
export async function generate(model: CausalLm, promptIds: readonly number[], opts: GenerateOptions): Promise<number[]> {
  if (promptIds.length === 0) throw new Error('generate: the prompt needs at least one token (BOS)');
  const eos = new Set(opts.eosId === undefined ? stopIds(model.config) : opts.eosId === null ? [] : typeof opts.eosId === 'number' ? [opts.eosId] : opts.eosId);
  const temperature = opts.temperature ?? 1;
  const greedy = (opts.greedy ?? false) || temperature === 0;
  const topP = opts.topP ?? 1;
  const rng = new Rng(opts.seed ?? 0);
  const useCache = opts.kvCache ?? true;
  const seq = [...promptIds];
  const out: number[] = [];
  let cache: LayerKv[] | null = null;
  try {
    for (let step = 0; step < opts.maxNewTokens; step++) {
      const input = useCache && cache ? seq.slice(-1) : seq;
      const r = await lastLogits(model, input, useCache ? cache : null);
      disposeKv(cache);
      cache = null;
      if (useCache) cache = r.present;
      else disposeKv(r.present);
      const next = greedy ? argmax(r.logits) : sampleToken(r.logits, temperature, topP, rng);
      out.push(next);
      seq.push(next);
      opts.onToken?.(next, step);
      if (eos.has(next)) break;
    }
  } finally {
    disposeKv(cache);
  }
  return out;
}
