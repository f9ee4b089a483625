// Adapter directories against HF PEFT's format: a LoRA adapter written here byte by byte as PEFT
// writes it loads and changes the output as the LoRA equation says; our LoRA/DoRA/VeRA files
// carry PEFT's keys, shapes and config fields; bad files are UserErrors naming the key or field.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/checkpoint/safetensors.js';
import { UserError } from '../../src/errors.js';
import { applyMethod } from '../../src/peft/apply.js';
import { loadAdapter, saveAdapter } from '../../src/peft/adapter-io.js';
import { uniformArray } from '../../src/peft/init.js';
import { effectiveWeight } from '../../src/peft/merge.js';
import { FakeModel, HIDDEN, INNER, maxRelErr } from './fake-model.js';

await initBackend('wasm');

const P = 'base_model.model.model.layers.0.self_attn.';
const R = 2;
const ALPHA = 5;

/** adapter_config.json as PEFT 0.13+ writes it for LoraConfig(r=2, lora_alpha=5, target_modules=["q_proj","v_proj"]). */
function peftLoraConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: 'fake', bias: 'none', eva_config: null, exclude_modules: null,
    fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null,
    layers_to_transform: null, loftq_config: {}, lora_alpha: ALPHA, lora_bias: false, lora_dropout: 0.05, megatron_config: null,
    megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', r: R, rank_pattern: {}, revision: null,
    target_modules: ['v_proj', 'q_proj'], task_type: 'CAUSAL_LM', use_dora: false, use_rslora: false, some_future_field: 1, ...extra,
  };
}

function peftLoraTensors(): Record<string, TensorToWrite> {
  const t: Record<string, TensorToWrite> = {};
  for (const m of ['q_proj', 'v_proj']) {
    t[`${P}${m}.lora_A.weight`] = { dtype: 'F32', shape: [R, HIDDEN], data: uniformArray(R * HIDDEN, 0.5, 1, m + 'A') }; // [r, k]
    t[`${P}${m}.lora_B.weight`] = { dtype: 'F32', shape: [INNER, R], data: uniformArray(INNER * R, 0.5, 1, m + 'B') }; // [d, r]
  }
  return t;
}

function writeDir(config: Record<string, unknown>, tensors: Record<string, TensorToWrite>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-peft-io-'));
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

void test('a PEFT LoRA adapter loads and adds (α/r)·B A to W0 of exactly the targeted layers', () => {
  const tensors = peftLoraTensors();
  const model = new FakeModel();
  const state = loadAdapter(writeDir(peftLoraConfig(), tensors), model);
  assert.deepEqual([...state.targets].sort(), ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj']);
  for (const m of ['q_proj', 'v_proj']) {
    const l = model.linear(m);
    const A = tf.tensor2d(tensors[`${P}${m}.lora_A.weight`]!.data as Float32Array, [R, HIDDEN]);
    const B = tf.tensor2d(tensors[`${P}${m}.lora_B.weight`]!.data as Float32Array, [INNER, R]);
    // ΔW = (α/r) B A in PyTorch layout [d, k]; kernel layout is its transpose.
    const want = tf.transpose(tf.mul(tf.matMul(B, A), ALPHA / R));
    assert.ok(maxRelErr(tf.sub(effectiveWeight(l).weight, l.weight), want) < 1e-5, m);
  }
  assert.equal(model.linear('k_proj').adapter, null);
  state.dispose();
});

void test('LoRA, DoRA and VeRA files use PEFT keys, shapes and config fields', async () => {
  const cases: [string, (dir: string) => void][] = [
    ['lora:r=2', (dir) => {
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg.peft_type, 'LORA');
      assert.equal(cfg.r, 2);
      assert.equal(cfg.lora_alpha, 4);
      assert.equal(cfg.use_dora, false);
      assert.equal(cfg.fan_in_fan_out, false);
      assert.deepEqual(cfg.target_modules, ['down_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
      const st = openSafetensors(path.join(dir, 'adapter_model.safetensors'));
      assert.deepEqual(st.tensors.get(`${P}o_proj.lora_A.weight`)!.shape, [2, INNER]);
      assert.deepEqual(st.tensors.get(`${P}o_proj.lora_B.weight`)!.shape, [HIDDEN, 2]);
      assert.equal(st.metadata.format, 'pt');
      st.close();
    }],
    ['dora', (dir) => {
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg.use_dora, true);
      const st = openSafetensors(path.join(dir, 'adapter_model.safetensors'));
      assert.deepEqual(st.tensors.get(`${P}q_proj.lora_magnitude_vector`)!.shape, [INNER]);
      st.close();
    }],
    ['vera:r=3', (dir) => {
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg.peft_type, 'VERA');
      assert.equal(cfg.save_projection, true);
      assert.equal(cfg.projection_prng_key, 4);
      const st = openSafetensors(path.join(dir, 'adapter_model.safetensors'));
      assert.deepEqual(st.tensors.get('base_model.vera_A')!.shape, [3, 10]); // [r, k_max]
      assert.deepEqual(st.tensors.get('base_model.vera_B')!.shape, [10, 3]); // [d_max, r]
      assert.deepEqual(st.tensors.get(`${P}q_proj.vera_lambda_b`)!.shape, [INNER]);
      assert.deepEqual(st.tensors.get(`${P}q_proj.vera_lambda_d`)!.shape, [3]);
      st.close();
    }],
    ['1lora-random+norms', (dir) => {
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg.peft_type, 'ONELORA');
      assert.equal(cfg.method, '1lora-random+norms');
      const st = openSafetensors(path.join(dir, 'adapter_model.safetensors'));
      assert.deepEqual(st.tensors.get(`${P}q_proj.onelora_b`)!.shape, [INNER]);
      assert.deepEqual(st.tensors.get(`${P}q_proj.onelora_c`)!.shape, [HIDDEN]);
      assert.deepEqual(st.tensors.get('base_model.model.model.norm.weight')!.shape, [HIDDEN]);
      st.close();
    }],
  ];
  for (const [spec, check] of cases) {
    const model = new FakeModel();
    const state = applyMethod(model, spec, { seed: 4 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-peft-io-'));
    await saveAdapter(dir, state, { baseModel: 'fake', taskType: 'CAUSAL_LM' });
    check(dir);
    state.dispose();
  }
});

function expectUserError(dir: string, pattern: RegExp): void {
  assert.throws(() => loadAdapter(dir, new FakeModel()), (err: unknown) => err instanceof UserError && pattern.test(err.message));
}

void test('bad adapter files are UserErrors naming the key or the field', () => {
  const good = peftLoraTensors();
  const missing = { ...good };
  delete missing[`${P}v_proj.lora_B.weight`];
  expectUserError(writeDir(peftLoraConfig(), missing), /missing tensor 'base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_B\.weight'/);
  const extra = { ...good, [`${P}k_proj.lora_A.weight`]: good[`${P}q_proj.lora_A.weight`]! };
  expectUserError(writeDir(peftLoraConfig(), extra), /unexpected tensor '.*k_proj\.lora_A\.weight'/);
  const wrong = { ...good, [`${P}q_proj.lora_A.weight`]: { dtype: 'F32' as const, shape: [HIDDEN, R], data: new Float32Array(HIDDEN * R) } };
  expectUserError(writeDir(peftLoraConfig(), wrong), /tensor '.*q_proj\.lora_A\.weight' has shape \[6, 2\], the model needs \[2, 6\]/);
  expectUserError(writeDir(peftLoraConfig({ fan_in_fan_out: true }), good), /'fan_in_fan_out' true/);
  expectUserError(writeDir(peftLoraConfig({ rank_pattern: { q_proj: 4 } }), good), /'rank_pattern'/);
  expectUserError(writeDir(peftLoraConfig({ alpha_pattern: { q_proj: 4 } }), good), /'alpha_pattern'/);
  expectUserError(writeDir(peftLoraConfig({ layers_to_transform: [0] }), good), /'layers_to_transform'/);
  expectUserError(writeDir(peftLoraConfig({ peft_type: 'IA3' }), good), /'peft_type' "IA3" is not supported/);
  expectUserError(writeDir({ peft_type: 'ONELORA', method: 'lorra' }, {}), /unknown method 'lorra' \(known: 1lora/);
  expectUserError(writeDir({ peft_type: 'VERA', r: 1, save_projection: false }, {}), /'save_projection' false/);
});

// PEFT's TaskType members, copied from huggingface/peft src/peft/utils/peft_types.py (PEFT is not
// installed here): PeftConfigMixin.__post_init__ raises "Invalid task type" for any other string.
const PEFT_TASK_TYPES = ['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION'];

void test('task_type is a PEFT TaskType (null for image classification and diffusion); old spellings still load', async () => {
  const written = async (taskType: string): Promise<unknown> => {
    const state = applyMethod(new FakeModel(), 'lora:r=2', { seed: 1 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-peft-io-'));
    await saveAdapter(dir, state, { baseModel: 'fake', taskType });
    state.dispose();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    // Round trip: what was written loads back.
    loadAdapter(dir, new FakeModel()).dispose();
    return cfg.task_type;
  };
  assert.equal(await written('causal-lm'), 'CAUSAL_LM');
  assert.ok(PEFT_TASK_TYPES.includes(await written('causal-lm') as string));
  assert.equal(await written('CAUSAL_LM'), 'CAUSAL_LM');
  assert.equal(await written('classification'), null);
  assert.equal(await written('diffusion'), null);
  for (const old of ['causal-lm', 'classification', 'diffusion', 'CAUSAL_LM', null]) {
    loadAdapter(writeDir(peftLoraConfig({ task_type: old }), peftLoraTensors()), new FakeModel()).dispose();
  }
  expectUserError(writeDir(peftLoraConfig({ task_type: 'IMAGE_CLS' }), peftLoraTensors()), /'task_type' "IMAGE_CLS" is not a PEFT TaskType/);
});

void test('base_model_name_or_path is what a user passes: a hub id or preset as is, a directory relative to the working directory', async () => {
  const written = async (baseModel: string): Promise<unknown> => {
    const state = applyMethod(new FakeModel(), '1lora');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-peft-io-'));
    await saveAdapter(dir, state, { baseModel });
    state.dispose();
    return (JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>).base_model_name_or_path;
  };
  assert.equal(await written('meta-llama/Llama-2-7b-hf'), 'meta-llama/Llama-2-7b-hf');
  assert.equal(await written('llama2-7b'), 'llama2-7b');
  assert.equal(await written('models/tiny'), 'models/tiny');
  // Configs resolve model.path to an absolute path; the adapter must not carry it.
  assert.equal(await written(path.join(process.cwd(), 'test', 'fixtures', 'models', 'llama-gqa')), path.join('test', 'fixtures', 'models', 'llama-gqa'));
  assert.equal(await written(process.cwd()), '.');
});
