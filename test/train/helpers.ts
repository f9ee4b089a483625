// A tiny, self-contained causal-LM run for trainer tests: a BPE tokenizer trained on generated
// problems, a 2-layer LLaMA with random weights written as a Hugging Face directory, and the
// problems prepared as Arrow files through the public `prepare` path.
import fs from 'node:fs';
import path from 'node:path';
import { parseConfig, type RunConfig } from '../../src/config/index.js';
import { demoMetamath } from '../../src/data/demo-data.js';
import { prepare } from '../../src/data/prepare.js';
import { alpacaPrompt } from '../../src/data/metamath.js';
import { randomModel, saveHfModel } from '../../src/models/hf.js';
import { LlamaModel } from '../../src/models/llama.js';
import { llamaLayout, parseLlamaConfig, type LlamaConfig } from '../../src/models/llama-config.js';
import { tokenizerFiles, trainBpe } from '../../scripts/demo/bpe.js';
import type { tf } from '../../src/backend/tf.js';
import { tmpDir } from '../helpers.js';

// Re-exported for the tests that still import it from here; new tests import ../helpers.js.
export { tmpDir } from '../helpers.js';

/** Writes model + tokenizer into DIR/model and prepared data into DIR/data; returns DIR. */
export async function tinyLmRun(rows = 48): Promise<string> {
  const dir = tmpDir('train');
  const problems = demoMetamath(rows, 11);
  const { vocab, merges } = trainBpe([...problems.map((p) => `${p.query} ${p.response}`), alpacaPrompt('')], 200);
  const files = tokenizerFiles(vocab, merges);
  const modelDir = path.join(dir, 'model');
  fs.mkdirSync(modelDir);
  fs.writeFileSync(path.join(modelDir, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  fs.writeFileSync(path.join(modelDir, 'tokenizer_config.json'), JSON.stringify(files.config));
  const hf = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', bos_token_id: 1, eos_token_id: 2, hidden_size: 32,
    intermediate_size: 48, num_attention_heads: 2, num_key_value_heads: 2, num_hidden_layers: 2, max_position_embeddings: 512,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, vocab_size: vocab.length,
  };
  const family = { layout: llamaLayout, build: (c: LlamaConfig, p: ReadonlyMap<string, tf.Variable>, raw: Record<string, unknown>) => new LlamaModel(c, p, raw) };
  const model = randomModel(family as never, parseLlamaConfig(hf, 'test'), 3, hf) as LlamaModel;
  await saveHfModel(model, modelDir);
  model.dispose();
  const input = path.join(dir, 'problems.json');
  fs.writeFileSync(input, JSON.stringify(problems));
  await prepare({ dataset: 'metamath', input, out: path.join(dir, 'data'), tokenizer: modelDir, valFraction: 0.25, seed: 0, maxLen: 256 });
  return dir;
}

export function tinyConfig(dir: string, overrides: Record<string, unknown> = {}, sets: string[] = []): RunConfig {
  const raw = {
    model: { path: 'model' },
    method: '1lora',
    task: 'causal-lm',
    data: { train: 'data/train.arrow', validation: 'data/validation.arrow', max_len: 256 },
    batch: { global: 8, micro: 4 },
    optim: { lr: 0.01 },
    schedule: { name: 'cosine', warmup_steps: 1, total_steps: 6 },
    eval: { every: 0, max_batches: 1 },
    checkpoint: { every: 2, keep: 2 },
    seed: 0,
    ...overrides,
  };
  return parseConfig(raw, { source: 'test config', baseDir: dir, overrides: sets });
}
