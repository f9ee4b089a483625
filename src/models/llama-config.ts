// LLaMA configuration: the typed, frozen form of Hugging Face's LlamaConfig (config.json), its
// inverse for export, and the parameter layout it implies (HF names, shapes, LinearModule roles).
import { HfConfigReader, linearSpec, type ModelLayout, type ParamSpec } from './layout.js';
import type { LinearSpec, NormSpec } from '../nn/modules.js';
import type { Rope, RopeScaling } from '../nn/rope.js';
import { UserError } from '../errors.js';

export interface LlamaConfig {
  readonly family: 'llama';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /** SwiGLU width (11008 for LLaMA-2-7B: ≈ 8/3 · 4096 rounded up to a multiple of 256). */
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Grouped-query attention: numHeads must be a multiple of it; equal to numHeads for LLaMA-2-7B/13B. */
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** `rope_scaling` (Llama 3.1+ `llama3`, `linear`, `dynamic`); null for plain RoPE. */
  readonly ropeScaling: RopeScaling | null;
  readonly maxPositionEmbeddings: number;
  /** lm_head shares the embedding matrix (no lm_head.weight in the file). */
  readonly tieWordEmbeddings: boolean;
  readonly attentionBias: boolean;
  readonly mlpBias: boolean;
  readonly bosTokenId: number | null;
  /** config.json's eos_token_id: one id or several (Llama 3); generation stops at any of them. */
  readonly eosTokenIds: readonly number[];
  /** generation_config.json's eos_token_id when the directory has one: transformers' generate() stops at these instead. */
  readonly generationEosIds?: readonly number[];
}

/** Validates a config.json of model_type "llama" (or a preset written in the same form). */
export function parseLlamaConfig(raw: Readonly<Record<string, unknown>>, source: string): LlamaConfig {
  const r = new HfConfigReader(raw, source);
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  const headDim = r.int('head_dim', hiddenSize / numHeads);
  if (numHeads % numKvHeads !== 0) {
    r.refuse('num_key_value_heads', () => false, `num_attention_heads ${numHeads} must be a multiple of it`);
  }
  if (headDim % 2 !== 0) r.refuse('head_dim', () => false, 'RoPE needs an even head dimension');
  // Anything that changes the maths and is not implemented is refused rather than silently ignored.
  const maxPositionEmbeddings = r.int('max_position_embeddings', 2048);
  const ropeScaling = parseRopeScaling(raw['rope_scaling'], source, maxPositionEmbeddings);
  r.refuse('hidden_act', (v) => v === 'silu', 'LLaMA uses SwiGLU with silu');
  r.refuse('model_type', (v) => v === 'llama', 'expected "llama"');
  return Object.freeze({
    family: 'llama' as const,
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    intermediateSize: r.int('intermediate_size'),
    numLayers: r.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: r.num('rms_norm_eps', 1e-6), // LlamaConfig's default; LLaMA-2 files say 1e-5
    ropeTheta: r.num('rope_theta', 10000),
    ropeScaling,
    maxPositionEmbeddings,
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    attentionBias: r.bool('attention_bias', false),
    mlpBias: r.bool('mlp_bias', false),
    bosTokenId: r.tokenId('bos_token_id'),
    eosTokenIds: Object.freeze(r.tokenIds('eos_token_id')),
  });
}

/** The config.json that Hugging Face transformers reads back as the same model. */
export function llamaConfigToHf(c: LlamaConfig, base: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  return {
    ...base,
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingToHf(c.ropeScaling),
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    attention_bias: c.attentionBias,
    mlp_bias: c.mlpBias,
    bos_token_id: c.bosTokenId,
    // A list stays a list (merge must not cut Llama 3's [128001, 128009] to its first id).
    eos_token_id: c.eosTokenIds.length === 0 ? null : c.eosTokenIds.length > 1 || Array.isArray(base.eos_token_id) ? [...c.eosTokenIds] : c.eosTokenIds[0],
  };
}

/** What applyRope needs of a config. */
export function llamaRope(c: LlamaConfig): Rope {
  return { theta: c.ropeTheta, scaling: c.ropeScaling };
}

/**
 * `rope_scaling` as transformers reads it (rope_modeling_utils' validation): `rope_type`, or the
 * older `type`, selects the formula; each type's required fields must be numbers. A type that is
 * not implemented is refused naming the field, never run as plain RoPE.
 */
function parseRopeScaling(v: unknown, source: string, maxPositionEmbeddings: number): RopeScaling | null {
  if (v === undefined || v === null) return null;
  const bad = (key: string, want: string, got: unknown): never => {
    throw new UserError(`${source}: 'rope_scaling.${key}' must be ${want}, got ${JSON.stringify(got)}`);
  };
  if (typeof v !== 'object' || Array.isArray(v)) bad('', 'an object', v);
  const o = v as Record<string, unknown>;
  const typeKey = o['rope_type'] !== undefined ? 'rope_type' : 'type';
  const type = o[typeKey] ?? 'default';
  const num = (key: string, min: number): number => {
    const x = o[key];
    if (typeof x !== 'number' || !Number.isFinite(x) || x < min) bad(key, `a number ≥ ${min}`, x);
    return x as number;
  };
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return { type: 'linear', factor: num('factor', 1) };
    case 'dynamic':
      return { type: 'dynamic', factor: num('factor', 1), maxPositionEmbeddings };
    case 'llama3': {
      const lowFreqFactor = num('low_freq_factor', 0);
      const highFreqFactor = num('high_freq_factor', 0);
      if (highFreqFactor <= lowFreqFactor) bad('high_freq_factor', `greater than low_freq_factor ${lowFreqFactor}`, highFreqFactor);
      return { type: 'llama3', factor: num('factor', 1), lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: num('original_max_position_embeddings', 1) };
    }
    default:
      throw new UserError(
        `${source}: 'rope_scaling' has ${typeKey} ${JSON.stringify(type)}, which is not supported (implemented: default, linear, dynamic, llama3)`,
      );
  }
}

function ropeScalingToHf(s: RopeScaling | null): Record<string, unknown> | null {
  if (!s) return null;
  switch (s.type) {
    case 'llama3':
      return {
        rope_type: s.type,
        factor: s.factor,
        low_freq_factor: s.lowFreqFactor,
        high_freq_factor: s.highFreqFactor,
        original_max_position_embeddings: s.originalMaxPositionEmbeddings,
      };
    default:
      return { rope_type: s.type, factor: s.factor };
  }
}

export function llamaLayout(c: LlamaConfig): ModelLayout {
  const d = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const linears: LinearSpec[] = [];
  const norms: NormSpec[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    norms.push({ path: `${p}.input_layernorm`, features: d, hasBias: false });
    linears.push(
      linearSpec(`${p}.self_attn.q_proj`, d, qDim, c.attentionBias, 'q'),
      linearSpec(`${p}.self_attn.k_proj`, d, kvDim, c.attentionBias, 'k'),
      linearSpec(`${p}.self_attn.v_proj`, d, kvDim, c.attentionBias, 'v'),
      linearSpec(`${p}.self_attn.o_proj`, qDim, d, c.attentionBias, 'attn_out'),
    );
    norms.push({ path: `${p}.post_attention_layernorm`, features: d, hasBias: false });
    linears.push(
      linearSpec(`${p}.mlp.gate_proj`, d, c.intermediateSize, c.mlpBias, 'mlp_gate'),
      linearSpec(`${p}.mlp.up_proj`, d, c.intermediateSize, c.mlpBias, 'mlp_in'),
      linearSpec(`${p}.mlp.down_proj`, c.intermediateSize, d, c.mlpBias, 'mlp_out'),
    );
  }
  norms.push({ path: 'model.norm', features: d, hasBias: false });
  // A tied head is the embedding matrix itself: no module of its own to adapt or to count twice.
  if (!c.tieWordEmbeddings) linears.push(linearSpec('lm_head', d, c.vocabSize, false, 'head'));
  const extras: ParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, d], kind: 'plain', init: 'normal' }];
  return { linears, norms, extras, headPaths: c.tieWordEmbeddings ? [] : ['lm_head'] };
}
