// `npm run make-demo-model`: builds the default job's base model, deterministically, from nothing:
//  1. a pre-training corpus of generated arithmetic word problems in a plain "Question:/Answer:"
//     format (the same generator as the fine-tuning data, another seed, another format);
//  2. a ~384-token BPE tokenizer (scripts/demo/bpe.ts) in LLaMA-2's tokenizer.json layout;
//  3. a ~1 M-parameter LLaMA (4 layers, width 128) trained from scratch on the corpus with full
//     fine-tuning through onelora's own trainer engine;
//  4. saved as F16 safetensors + config.json + tokenizer files in models/demo-llama/.
// The default job (`npm start`) then fine-tunes it with 1LoRA to answer in MetaMath's Alpaca format.
import fs from 'node:fs';
import path from 'node:path';
import { initBackend, tf } from '../src/backend/select.js';
import { repoRoot } from '../src/config/index.js';
import { lmSchema, lmBatch } from '../src/data/arrow.js';
import { demoMetamath } from '../src/data/demo-data.js';
import { Rng } from '../src/nn/rng.js';
import { ALPACA_PREFIX } from '../src/data/metamath.js';
import { prepare } from '../src/data/prepare.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { childLog } from '../src/log.js';
import { randomModel, saveHfModel } from '../src/models/hf.js';
import { LlamaModel } from '../src/models/llama.js';
import { llamaLayout, parseLlamaConfig, type LlamaConfig } from '../src/models/llama-config.js';
import { TrainEngine } from '../src/train/engine.js';
import { CausalLmTask, type CausalLmModel } from '../src/train/tasks/causal-lm.js';
import { tokenizerFiles, trainBpe } from './demo/bpe.js';

const log = childLog('make-demo-model');
const SEED = 1234;
const VOCAB = 384;
const STEPS = Number(process.env.DEMO_PRETRAIN_STEPS ?? 1500);
const BATCH = 16;

export const DEMO_LLAMA_CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', bos_token_id: 1, eos_token_id: 2,
  hidden_size: 128, intermediate_size: 352, num_attention_heads: 4, num_key_value_heads: 4, num_hidden_layers: 4,
  max_position_embeddings: 512, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, vocab_size: VOCAB,
  torch_dtype: 'float16',
};

/**
 * Rows of eight arithmetic facts ("12 + 35 = 47. 6 * 7 = 42. …") over the ranges the word problems
 * use: a ~1 M-parameter model learns the problems' wording quickly and their arithmetic slowly, so
 * the corpus drills it. Interleaved with the problems by a seeded shuffle.
 */
function arithmeticDrills(rows: number, seed: number): string[] {
  const r = Rng.from(seed, 0xa7);
  const n = (lo: number, hi: number) => lo + r.int(hi - lo + 1);
  return Array.from({ length: rows }, () => Array.from({ length: 8 }, () => {
    const op = r.int(3);
    if (op === 0) { const [a, b] = [n(1, 150), n(1, 100)]; return `${a} + ${b} = ${a + b}.`; }
    if (op === 1) { const a = n(10, 200); const b = n(1, a); return `${a} - ${b} = ${a - b}.`; }
    const [a, b] = [n(1, 90), n(1, 12)];
    return `${a} * ${b} = ${a * b}.`;
  }).join(' '));
}

async function main(): Promise<void> {
  if (process.argv.includes('--data-only')) {
    await initBackend(process.env.ONELORA_BACKEND);
    return prepareDemoData(path.join(repoRoot(), 'models', 'demo-llama'));
  }
  await initBackend(process.env.ONELORA_BACKEND);
  const out = path.join(repoRoot(), 'models', 'demo-llama');
  const texts = [...demoMetamath(8000, SEED).map((r) => `Question: ${r.query}\nAnswer: ${r.response}`), ...arithmeticDrills(4000, SEED)];
  // The tokenizer also sees the Alpaca header, so the fine-tuning prompts tokenize compactly.
  const { vocab, merges } = trainBpe([...texts, ALPACA_PREFIX + '\n\n### Response:\n'], VOCAB);
  const files = tokenizerFiles(vocab, merges);
  const tmp = `${out}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  fs.writeFileSync(path.join(tmp, 'tokenizer.json'), JSON.stringify(files.tokenizer) + '\n');
  fs.writeFileSync(path.join(tmp, 'tokenizer_config.json'), JSON.stringify(files.config, null, 2) + '\n');
  const tok = await loadTokenizer(tmp);
  log.info({ vocab: vocab.length, merges: merges.length }, 'tokenizer trained');

  const config: LlamaConfig = parseLlamaConfig({ ...DEMO_LLAMA_CONFIG, vocab_size: vocab.length }, 'demo config');
  const family = { layout: llamaLayout, build: (c: LlamaConfig, p: ReadonlyMap<string, tf.Variable>, hf: Record<string, unknown>) => new LlamaModel(c, p, hf) };
  const model = randomModel(family as never, config, SEED, { ...DEMO_LLAMA_CONFIG }) as LlamaModel;
  for (const l of model.linears()) l.trainWeight = true;
  const trainable = new Map(model.parameters());
  const task = new CausalLmTask(tok, { generate: false, maxNewTokens: 32 });
  const engine = new TrainEngine(model as unknown as CausalLmModel, task, trainable, {
    schedule: { name: 'cosine', baseLr: 3e-3, warmupSteps: 50, totalSteps: STEPS, minLrRatio: 0.1 },
    betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, gradClip: 1.0, noDecay: (k) => /norm/.test(k),
  });
  const rows = Array.from(Rng.from(SEED, 0x5f).permutation(texts.length), (i) => texts[i] as string).map((t) => {
    const ids = tok.encode(t, { bos: true, eos: true });
    return { inputIds: ids, labels: ids };
  });
  const schema = lmSchema('demo');
  const t0 = performance.now();
  for (let step = 0; step < STEPS; step++) {
    const batch = Array.from({ length: BATCH }, (_, i) => rows[(step * BATCH + i) % rows.length] as { inputIds: number[]; labels: number[] });
    const rb = lmBatch(schema, batch);
    const units = task.countUnits(rb);
    const { grad, lossSum } = await engine.computeGrads([{ rows: rb, ctx: { seed: SEED, epoch: 0, sampleIds: [], training: true } }], units);
    engine.applyUpdate(grad, step);
    if (step % 50 === 0 || step === STEPS - 1) log.info({ step, loss: Number((lossSum / units).toFixed(4)), s: Math.round((performance.now() - t0) / 1000) }, 'pre-training');
  }
  await saveHfModel(model, tmp, { dtype: 'F16' });
  const sample = await model.generate(tok.encode('Question: Ava has 12 apples. Ava gets 5 more apples. How many apples does Ava have now?\nAnswer:', { bos: true }), { maxNewTokens: 40, greedy: true, eosId: tok.eosId });
  log.info({ sample: tok.decode(sample) }, 'sample');
  fs.rmSync(out, { recursive: true, force: true });
  fs.renameSync(tmp, out);
  log.info({ out, params: [...model.parameters().values()].reduce((n, v) => n + v.size, 0) }, 'demo model written');
  await prepareDemoData(out);
}

/** The fine-tuning data of presets/demo.yaml: the bundled MetaMath-format problems, tokenized for the demo model. */
async function prepareDemoData(modelDir: string): Promise<void> {
  const root = repoRoot();
  const report = await prepare({
    dataset: 'metamath', input: path.join(root, 'data', 'demo', 'metamath-demo.json'), out: path.join(root, 'data', 'demo', 'metamath-llama'),
    tokenizer: modelDir, valFraction: 0.2, seed: 0, maxLen: 256,
  });
  log.info({ rows: report.rows, truncated: report.truncated }, 'demo data prepared');
}

await main();
