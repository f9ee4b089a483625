// The 1LoRA paper's parameter counts (arXiv 2503.08333, appendix D), reproduced from shapes alone.
// LLaMA-2 tables (S6, S7) print the count; the ViT-B/16 tables (S9, S10, S11 footnote, S12) print
// 4 × the count (bytes in float32, docs/architecture.md#the-method). Every number below is checked twice: exactly, and
// rounded the way the table prints it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LinearSpec, NormSpec } from '../../src/nn/modules.js';
import { countTrainable, type CountDescription } from '../../src/peft/count.js';

/** LLaMA-2 from its public config.json (no biases, RMSNorm without bias, untied lm_head). */
function llama(hidden: number, inter: number, layers: number, vocab = 32000): CountDescription {
  const linears: LinearSpec[] = [];
  const norms: NormSpec[] = [];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    norms.push({ path: `${p}.input_layernorm`, features: hidden, hasBias: false }, { path: `${p}.post_attention_layernorm`, features: hidden, hasBias: false });
    linears.push(
      { path: `${p}.self_attn.q_proj`, inFeatures: hidden, outFeatures: hidden, hasBias: false, role: 'q' },
      { path: `${p}.self_attn.k_proj`, inFeatures: hidden, outFeatures: hidden, hasBias: false, role: 'k' },
      { path: `${p}.self_attn.v_proj`, inFeatures: hidden, outFeatures: hidden, hasBias: false, role: 'v' },
      { path: `${p}.self_attn.o_proj`, inFeatures: hidden, outFeatures: hidden, hasBias: false, role: 'attn_out' },
      { path: `${p}.mlp.gate_proj`, inFeatures: hidden, outFeatures: inter, hasBias: false, role: 'mlp_gate' },
      { path: `${p}.mlp.up_proj`, inFeatures: hidden, outFeatures: inter, hasBias: false, role: 'mlp_in' },
      { path: `${p}.mlp.down_proj`, inFeatures: inter, outFeatures: hidden, hasBias: false, role: 'mlp_out' },
    );
  }
  norms.push({ path: 'model.norm', features: hidden, hasBias: false });
  linears.push({ path: 'lm_head', inFeatures: hidden, outFeatures: vocab, hasBias: false, role: 'head' });
  return { linears, norms, headPaths: ['lm_head'], family: 'llama' };
}

/** google/vit-base-patch16-224-in21k (q, k, v separate as in HF) with a new classifier. */
function vitB16(classes = 10): CountDescription {
  const d = 768;
  const linears: LinearSpec[] = [];
  const norms: NormSpec[] = [];
  for (let i = 0; i < 12; i++) {
    const p = `vit.encoder.layer.${i}`;
    norms.push({ path: `${p}.layernorm_before`, features: d, hasBias: true }, { path: `${p}.layernorm_after`, features: d, hasBias: true });
    linears.push(
      { path: `${p}.attention.attention.query`, inFeatures: d, outFeatures: d, hasBias: true, role: 'q' },
      { path: `${p}.attention.attention.key`, inFeatures: d, outFeatures: d, hasBias: true, role: 'k' },
      { path: `${p}.attention.attention.value`, inFeatures: d, outFeatures: d, hasBias: true, role: 'v' },
      { path: `${p}.attention.output.dense`, inFeatures: d, outFeatures: d, hasBias: true, role: 'attn_out' },
      { path: `${p}.intermediate.dense`, inFeatures: d, outFeatures: 3072, hasBias: true, role: 'mlp_in' },
      { path: `${p}.output.dense`, inFeatures: 3072, outFeatures: d, hasBias: true, role: 'mlp_out' },
    );
  }
  norms.push({ path: 'vit.layernorm', features: d, hasBias: true });
  linears.push({ path: 'classifier', inFeatures: d, outFeatures: classes, hasBias: true, role: 'head' });
  const layerParams = linears.reduce((a, l) => a + l.inFeatures * l.outFeatures + (l.hasBias ? l.outFeatures : 0), 0) + norms.length * 2 * d;
  // patch embedding conv (768·3·16·16 + 768), CLS token, 197 position embeddings
  const extras = 768 * 3 * 16 * 16 + 768 + 768 + 197 * 768;
  return { linears, norms, headPaths: ['classifier'], family: 'vit', totalParams: layerParams + extras };
}

/** As the tables print: 1.36M, 786.43K. */
function printed(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(2)}K`;
}

type Row = [spec: string, exact: number, table: string];

const LLAMA_7B: Row[] = [
  // Σ out features of the 7 projections × 32 layers = 32 × (4·4096 + 2·11008 + 4096)
  ['1lora', 1_359_872, '1.36M'],
  ['bitfit', 1_359_872, '1.36M'], // a zero bias added to every projection
  ['vera', 1_360_096, '1.36M'], // + λ_d (r = 1) per layer
  ['lora', 2_498_560, '2.50M'], // Σ (k + d)
  ['lora:targets=qkv', 786_432, '786.43K'], // "LoRA (QKV)"
  ['mora1', 1_360_960, '1.36M'], // r̂ = round(√11008) = 105
  ['mora6', 1_347_584, '1.35M'], // r̂ = 104 (even)
  // DiffFit: γ on every linear + the 65 RMSNorms; the paper's 1.66M also has γ on lm_head (32,000).
  ['difffit:targets=.*_proj|lm_head', 1_658_112, '1.66M'],
];
const LLAMA_13B: Row[] = [
  ['1lora', 2_129_920, '2.13M'],
  ['bitfit', 2_129_920, '2.13M'],
  ['lora:targets=qkv', 1_228_800, '1.23M'],
  ['difffit:targets=.*_proj|lm_head', 2_576_640, '2.58M'],
];
// ViT-B/16: the tables print 4 × these.
const VIT: Row[] = [
  ['1lora', 82_944, '331.78K'],
  ['bitfit', 82_944, '331.78K'],
  ['lora', 165_888, '663.55K'],
  ['dora', 248_832, '995.33K'],
  ['vera', 83_016, '332.06K'],
  ['mora1', 83_340, '333.36K'],
  ['mora6', 82_032, '328.13K'],
  ['difffit', 204_288, '817.15K'],
  ['1lora+norms', 121_344, '485.38K'],
  ['all', 85_798_656, '343.19M'],
  // Table S12 (the {1LoRA, β, γ, norms} grid)
  ['norms', 38_400, '153.60K'],
  ['difffit-gamma', 82_944, '331.78K'],
  ['1lora+bitfit', 165_888, '663.55K'],
  ['1lora+difffit-gamma', 165_888, '663.55K'],
  ['1lora+bitfit+norms', 204_288, '817.15K'],
  ['1lora+bitfit+difffit-gamma', 248_832, '995.33K'],
  ['1lora+difffit-gamma+norms', 204_288, '817.15K'],
  ['1lora+bitfit+difffit-gamma+norms', 287_232, '1.15M'],
];

function check(desc: CountDescription, rows: Row[], factor: number, table: string): void {
  for (const [spec, exact, shown] of rows) {
    const got = countTrainable(desc, spec).trainable;
    assert.equal(got, exact, `${table} ${spec}`);
    assert.equal(printed(factor * got), shown, `${table} ${spec} as printed`);
  }
}

void test('LLaMA-2-7B counts (Table S6)', () => check(llama(4096, 11008, 32), LLAMA_7B, 1, 'S6'));
void test('LLaMA-2-13B counts (Table S7)', () => check(llama(5120, 13824, 40), LLAMA_13B, 1, 'S7'));
void test('ViT-B/16 counts (Tables S9, S10, S12; printed ×4)', () => {
  const desc = vitB16();
  check(desc, VIT, 4, 'S9/S12');
  const r = countTrainable(desc, '1lora');
  assert.equal(r.head, 768 * 10 + 10, 'the new classifier is reported as head');
  assert.equal(r.layers, 72);
  assert.equal(r.bytes_fp32, 4 * 82_944);
  assert.deepEqual(r.targets, ['dense', 'key', 'query', 'value']);
});
void test('LLaMA-2-7B: all-linear excludes lm_head; LoRA (QKV) adapts 96 layers', () => {
  const desc = llama(4096, 11008, 32);
  assert.equal(countTrainable(desc, '1lora').layers, 224);
  assert.equal(countTrainable(desc, 'lora:targets=qkv').layers, 96);
  // Without lm_head's γ DiffFit is 1.63M: the one table entry that needs the head targeted.
  assert.equal(countTrainable(desc, 'difffit').trainable, 1_626_112);
});
