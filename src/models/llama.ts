// LLaMA (Touvron et al. 2023, arXiv 2302.13971 and 2307.09288): pre-norm decoder blocks with
// RMSNorm, rotary position embeddings (Hugging Face's rotate_half convention), grouped-query
// attention and a SwiGLU MLP. Module paths are Hugging Face's, so checkpoints, adapters and
// `targets` regexes use the same names. Read top to bottom: norm → attention → MLP → block → model.
import { tf } from '../backend/tf.js';
import { frozenTranspose, linear, matmul } from '../backend/linear.js';
import { applyRope, attend, causalMask, mergeHeads, repeatKv, splitHeads } from '../nn/attention.js';
import { generate, type GenerateOptions, type LayerKv } from './generate.js';
import { llamaConfigToHf, llamaLayout, llamaRope, type LlamaConfig } from './llama-config.js';
import { type ModelLayout, paramOf, type ParamTable } from './layout.js';
import { LinearModule, NormModule, type AdaptableModel, type LinearRole } from '../nn/modules.js';
import { crossEntropySum, embedding, rmsNorm, swiGlu } from '../nn/ops.js';

type T2 = tf.Tensor2D;


/** Looks parameters up by HF name; a missing one is a bug in the loader, not a user error. */

const param = <R extends tf.Rank>(params: ParamTable, name: string): tf.Variable<R> => paramOf<R>(params, name, 'LLaMA');

function linearModule(params: ParamTable, path: string, role: LinearRole, hasBias: boolean): LinearModule {
  return new LinearModule(path, role, param(params, `${path}.weight`), hasBias ? param(params, `${path}.bias`) : null);
}

class RmsNorm {
  constructor(
    readonly module: NormModule,
    private readonly eps: number,
  ) {}
  forward(x: T2): T2 {
    return rmsNorm(x, this.module.weight, this.eps);
  }
}

class LlamaAttention {
  readonly q: LinearModule;
  readonly k: LinearModule;
  readonly v: LinearModule;
  readonly o: LinearModule;

  constructor(
    private readonly c: LlamaConfig,
    params: ParamTable,
    prefix: string,
  ) {
    this.q = linearModule(params, `${prefix}.q_proj`, 'q', c.attentionBias);
    this.k = linearModule(params, `${prefix}.k_proj`, 'k', c.attentionBias);
    this.v = linearModule(params, `${prefix}.v_proj`, 'v', c.attentionBias);
    this.o = linearModule(params, `${prefix}.o_proj`, 'attn_out', c.attentionBias);
  }

  /** x [B·T, D] at positions offset..offset+T-1, after `past` (S-T cached positions) -> [B·T, D] */
  forward(x: T2, b: number, t: number, past: LayerKv | null): { y: T2; present: LayerKv } {
    const { numHeads: h, numKvHeads: hkv, headDim: hd } = this.c;
    const offset = past ? past.k.shape[2] : 0;
    const rope = llamaRope(this.c);
    const q = applyRope(splitHeads(this.q.forward(x), b, t, h, hd), rope, offset); // [B, H, T, hd]
    let k = applyRope(splitHeads(this.k.forward(x), b, t, hkv, hd), rope, offset); // [B, Hkv, T, hd]
    let v = splitHeads(this.v.forward(x), b, t, hkv, hd); // [B, Hkv, T, hd]
    if (past) {
      k = tf.concat([past.k, k], 2); // [B, Hkv, S, hd]
      v = tf.concat([past.v, v], 2);
    }
    const s = k.shape[2];
    // One new query attends to every cached key: no mask needed.
    const mask = t === 1 ? null : causalMask(t, s);
    const y = attend(q, repeatKv(k, h / hkv), repeatKv(v, h / hkv), mask); // [B, H, T, hd]
    return { y: this.o.forward(mergeHeads(y)), present: { k, v } }; // [B·T, H·hd] -> [B·T, D]
  }
}

/** SwiGLU (Shazeer 2020): down(silu(gate(x)) ⊙ up(x)). x [B·T, D] -> [B·T, D] */
class LlamaMlp {
  readonly gate: LinearModule;
  readonly up: LinearModule;
  readonly down: LinearModule;

  constructor(c: LlamaConfig, params: ParamTable, prefix: string) {
    this.gate = linearModule(params, `${prefix}.gate_proj`, 'mlp_gate', c.mlpBias);
    this.up = linearModule(params, `${prefix}.up_proj`, 'mlp_in', c.mlpBias);
    this.down = linearModule(params, `${prefix}.down_proj`, 'mlp_out', c.mlpBias);
  }

  forward(x: T2): T2 {
    return this.down.forward(swiGlu(this.gate.forward(x), this.up.forward(x))); // [B·T, I] -> [B·T, D]
  }
}

/** x + attn(norm(x)), then x + mlp(norm(x)). */
class LlamaBlock {
  readonly inputNorm: RmsNorm;
  readonly attn: LlamaAttention;
  readonly postNorm: RmsNorm;
  readonly mlp: LlamaMlp;

  constructor(c: LlamaConfig, params: ParamTable, i: number) {
    const p = `model.layers.${i}`;
    const norm = (path: string): RmsNorm => new RmsNorm(new NormModule(path, param(params, `${path}.weight`), null), c.rmsNormEps);
    this.inputNorm = norm(`${p}.input_layernorm`);
    this.attn = new LlamaAttention(c, params, `${p}.self_attn`);
    this.postNorm = norm(`${p}.post_attention_layernorm`);
    this.mlp = new LlamaMlp(c, params, `${p}.mlp`);
  }

  forward(x: T2, b: number, t: number, past: LayerKv | null): { y: T2; present: LayerKv } {
    const a = this.attn.forward(this.inputNorm.forward(x), b, t, past);
    const h = tf.add(x, a.y) as T2;
    return { y: tf.add(h, this.mlp.forward(this.postNorm.forward(h))) as T2, present: a.present };
  }
}

export class LlamaModel implements AdaptableModel {
  readonly family = 'llama' as const;
  readonly layout: ModelLayout;
  readonly headPaths: readonly string[];
  private readonly embed: tf.Variable<tf.Rank.R2>;
  private readonly blocks: LlamaBlock[] = [];
  private readonly finalNorm: RmsNorm;
  /** null when tied: the head is embedᵀ. */
  private readonly lmHead: LinearModule | null;

  constructor(
    readonly config: LlamaConfig,
    private readonly params: ParamTable,
    /** The config.json it came from (unknown keys are kept on export). */
    readonly hfConfigBase: Readonly<Record<string, unknown>> = {},
  ) {
    this.layout = llamaLayout(config);
    this.headPaths = this.layout.headPaths;
    this.embed = param(params, 'model.embed_tokens.weight');
    for (let i = 0; i < config.numLayers; i++) this.blocks.push(new LlamaBlock(config, params, i));
    this.finalNorm = new RmsNorm(new NormModule('model.norm', param(params, 'model.norm.weight'), null), config.rmsNormEps);
    this.lmHead = config.tieWordEmbeddings ? null : linearModule(params, 'lm_head', 'head', false);
  }

  /**
   * The final normalised hidden states of ids [B, T] -> [B·T, D], continuing after `past` (one
   * entry per layer) when given; returns the keys and values of every position seen.
   */
  hidden(ids: tf.Tensor2D, past: readonly LayerKv[] | null = null): { h: T2; present: LayerKv[] } {
    const [b, t] = ids.shape;
    let x = embedding(this.embed, ids); // [B·T, D]
    const present: LayerKv[] = [];
    this.blocks.forEach((block, i) => {
      const r = block.forward(x, b, t, past ? (past[i] ?? null) : null);
      x = r.y;
      present.push(r.present);
    });
    return { h: this.finalNorm.forward(x), present };
  }

  /** h [N, D] -> logits [N, V]; a tied head multiplies by the embedding matrix transposed. */
  head(h: T2): T2 {
    if (this.lmHead) return this.lmHead.forward(h);
    return this.embed.trainable ? matmul(h, tf.transpose(this.embed)) : linear(h, frozenTranspose(this.embed));
  }

  /** ids int32 [B, T] -> float32 [B, T, V] */
  logits(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, t] = ids.shape;
      return this.head(this.hidden(ids).h).reshape([b, t, this.config.vocabSize]);
    });
  }

  /**
   * Σ over positions t of -log p(labels[t+1] | ids[..t]), skipping shifted labels equal to -100.
   * Labels are unshifted (docs/architecture.md#datasets); the last position predicts nothing, so it never reaches the head.
   */
  lossSum(ids: tf.Tensor2D, labels: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      const [b, t] = ids.shape;
      const d = this.config.hiddenSize;
      const h = this.hidden(ids).h.reshape([b, t, d]);
      const hPred = tf.slice(h, [0, 0, 0], [b, t - 1, d]).reshape([b * (t - 1), d]) as T2; // [B·(T-1), D]
      const next = tf.slice(labels, [0, 1], [b, t - 1]).reshape([b * (t - 1)]) as tf.Tensor1D;
      return crossEntropySum(this.head(hPred), tf.cast(next, 'int32'));
    });
  }

  /** New token ids after `promptIds` (EOS included when reached); see generate.ts. */
  generate(promptIds: readonly number[], opts: GenerateOptions): Promise<number[]> {
    return generate(this, promptIds, opts);
  }

  linears(): readonly LinearModule[] {
    const out: LinearModule[] = [];
    for (const b of this.blocks) out.push(b.attn.q, b.attn.k, b.attn.v, b.attn.o, b.mlp.gate, b.mlp.up, b.mlp.down);
    if (this.lmHead) out.push(this.lmHead);
    return out;
  }

  norms(): readonly NormModule[] {
    const out: NormModule[] = [];
    for (const b of this.blocks) out.push(b.inputNorm.module, b.postNorm.module);
    out.push(this.finalNorm.module);
    return out;
  }

  parameters(): ReadonlyMap<string, tf.Variable> {
    return this.params;
  }

  toHfConfig(): Record<string, unknown> {
    return llamaConfigToHf(this.config, this.hfConfigBase);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }
}
