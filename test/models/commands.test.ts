// generate, merge and predict through commander, as `onelora` runs them (main.ts lists them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { initBackend, tf } from '../../src/backend/select.js';
import { writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { registerGenerate } from '../../src/cli/commands/generate.js';
import { registerMerge } from '../../src/cli/commands/merge.js';
import { registerPredict } from '../../src/cli/commands/predict.js';
import { LlamaModel } from '../../src/models/llama.js';
import { loadModel } from '../../src/models/registry.js';
import { loadAdapter, saveAdapter } from '../../src/peft/adapter-io.js';
import { applyMethod } from '../../src/peft/apply.js';
import { FIXTURES, copyFixture, expected, maxAbsDiff, runCommands, tmpDir, values } from './helpers.js';

await initBackend('wasm');

/** Runs `onelora ARGS`; returns stdout, stderr and the exit code the action set. */
const run = (...args: string[]) => runCommands([registerGenerate, registerMerge, registerPredict], ...args);

const llamaDir = path.join(FIXTURES, 'llama-gqa');
const ROOT_DIR = path.resolve(import.meta.dirname, '../..');

void test('generate --prompt-ids --greedy --json prints the reference continuation and text null', async () => {
  const e = expected['llama-gqa'];
  const r = await run('generate', '--model', llamaDir, '--prompt-ids', e.greedy_prompt.join(','), '--max-new-tokens', String(e.greedy.length), '--greedy', '--json', '--backend', 'wasm');
  assert.equal(r.code, 0, r.err);
  const eos = e.greedy.indexOf(2);
  assert.deepEqual(JSON.parse(r.out.trim().split('\n').at(-1)!), { ids: eos < 0 ? e.greedy : e.greedy.slice(0, eos + 1), text: null });
});

void test('bad flags and files are exit 2 naming the flag', async () => {
  const cases: [string[], RegExp][] = [
    [['generate', '--model', llamaDir, '--max-new-tokens', '3'], /exactly one of --prompt and --prompt-ids/],
    [['generate', '--model', llamaDir, '--prompt', 'hi', '--max-new-tokens', '3'], /--prompt needs a tokenizer/],
    [['generate', '--model', llamaDir, '--prompt-ids', '1,x', '--max-new-tokens', '3'], /--prompt-ids: 'x'/],
    [['generate', '--model', llamaDir, '--prompt-ids', '1', '--max-new-tokens', '0'], /--max-new-tokens/],
    [['generate', '--model', '/nonexistent', '--prompt-ids', '1', '--max-new-tokens', '2'], /--model: /],
    [['generate', '--model', path.join(FIXTURES, 'vit'), '--prompt-ids', '1', '--max-new-tokens', '2'], /cannot generate/],
    [['merge', '--model', llamaDir, '--adapter', '/nonexistent', '--out', tmpDir()], /--adapter \/nonexistent: not a directory/],
    [['predict', '--model', path.join(FIXTURES, 'vit'), '--image', '/nonexistent.png'], /--image \/nonexistent\.png: no such file/],
  ];
  for (const [args, pattern] of cases) {
    const r = await run(...args, '--backend', 'wasm');
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, pattern);
  }
});

void test('merge: a 1LoRA adapter folded in gives the adapted logits and the same generation', async () => {
  const base = await loadModel(llamaDir);
  const model = base.model as LlamaModel;
  const state = applyMethod(model, '1lora');
  for (const [i, v] of [...state.trainable.values()].entries()) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', i + 1));
  const adapter = tmpDir();
  await saveAdapter(adapter, state, { baseModel: llamaDir });
  const ids = tf.tensor2d([[1, 5, 9, 3, 7, 11]], undefined, 'int32');
  const adapted = values(model.logits(ids));
  const genAdapted = await model.generate([1, 5, 9], { maxNewTokens: 8, greedy: true, eosId: null });
  const out = path.join(tmpDir(), 'merged');
  const r = await run('merge', '--model', llamaDir, '--adapter', adapter, '--out', out, '--json', '--backend', 'wasm');
  assert.equal(r.code, 0, r.err);
  assert.ok(fs.existsSync(path.join(out, 'config.json')) && fs.existsSync(path.join(out, 'model.safetensors')));
  const merged = (await loadModel(out)).model as LlamaModel;
  assert.ok(maxAbsDiff(values(merged.logits(ids)), adapted) < 1e-4);
  assert.notDeepEqual(adapted, values(((await loadModel(llamaDir)).model as LlamaModel).logits(ids)));
  assert.deepEqual(await merged.generate([1, 5, 9], { maxNewTokens: 8, greedy: true, eosId: null }), genAdapted);
  const g = await run('generate', '--model', llamaDir, '--adapter', adapter, '--prompt-ids', '1,5,9', '--max-new-tokens', '8', '--greedy', '--json', '--backend', 'wasm');
  assert.equal(g.code, 0, g.err);
  const eos = genAdapted.indexOf(2);
  assert.deepEqual((JSON.parse(g.out.trim()) as { ids: number[] }).ids, eos < 0 ? genAdapted : genAdapted.slice(0, eos + 1));
});

void test('a PEFT-format LoRA adapter changes the output as W0 + (alpha/r)·B·A says', async () => {
  const r = 2;
  const alpha = 4;
  const adapter = tmpDir();
  fs.writeFileSync(path.join(adapter, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', r, lora_alpha: alpha, target_modules: ['q_proj', 'v_proj'], task_type: 'CAUSAL_LM', base_model_name_or_path: llamaDir,
  }));
  const reference = (await loadModel(llamaDir)).model as LlamaModel;
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  let seed = 100;
  for (const l of reference.linears().filter((m) => /(q|v)_proj$/.test(m.path))) {
    const a = tf.randomNormal([r, l.inFeatures], 0, 0.3, 'float32', seed++) as tf.Tensor2D; // [r, k]
    const b = tf.randomNormal([l.outFeatures, r], 0, 0.3, 'float32', seed++) as tf.Tensor2D; // [d, r]
    tensors[`base_model.model.${l.path}.lora_A.weight`] = { dtype: 'F32', shape: a.shape, data: a.dataSync() as Float32Array };
    tensors[`base_model.model.${l.path}.lora_B.weight`] = { dtype: 'F32', shape: b.shape, data: b.dataSync() as Float32Array };
    // Kernel layout: W0 [k, d] + s·(B A)ᵀ = s·Aᵀ Bᵀ, [k, r] · [r, d]
    l.weight.assign(tf.add(l.weight, tf.mul(tf.matMul(a, b, true, true), alpha / r)));
  }
  writeSafetensors(path.join(adapter, 'adapter_model.safetensors'), tensors);
  const model = (await loadModel(llamaDir)).model as LlamaModel;
  const ids = tf.tensor2d([[1, 5, 9, 3, 7, 11]], undefined, 'int32');
  const before = values(model.logits(ids));
  loadAdapter(adapter, model);
  const after = values(model.logits(ids));
  assert.ok(maxAbsDiff(before, after) > 1e-2, 'the adapter changes the output');
  assert.ok(maxAbsDiff(after, values(reference.logits(ids))) < 1e-4);
});

void test('predict --json prints the top-5 classes with labels, as logits of the preprocessed image say', async () => {
  const dir = tmpDir();
  const img = path.join(dir, 'x.png');
  const rgb = Buffer.from(Array.from({ length: 20 * 28 * 3 }, (_, i) => (i * 37) % 256));
  await sharp(rgb, { raw: { width: 28, height: 20, channels: 3 } }).png().toFile(img);
  const r = await run('predict', '--model', path.join(FIXTURES, 'vit'), '--image', img, '--json', '--backend', 'wasm');
  assert.equal(r.code, 0, r.err);
  const { top5 } = JSON.parse(r.out.trim()) as { top5: { index: number; label: string; prob: number }[] };
  assert.equal(top5.length, 5);
  assert.deepEqual(new Set(top5.map((t) => t.label)), new Set(['ant', 'bee', 'cat', 'dog', 'eel']));
  for (let i = 1; i < 5; i++) assert.ok(top5[i - 1]!.prob >= top5[i]!.prob);
  assert.ok(Math.abs(top5.reduce((s, t) => s + t.prob, 0) - 1) < 1e-5);
  fs.writeFileSync(path.join(dir, 'bad.png'), 'not an image');
  const bad = await run('predict', '--model', path.join(FIXTURES, 'vit'), '--image', path.join(dir, 'bad.png'), '--backend', 'wasm');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--image .*bad\.png: cannot decode/);
});

void test('a list of EOS ids (config.json or generation_config.json) stops generation at any of them; merge keeps the list', async () => {
  const reference = (await loadModel(llamaDir)).model as LlamaModel;
  const full = await reference.generate([1, 5, 9], { maxNewTokens: 10, greedy: true, eosId: null });
  reference.dispose();
  const k = full.findIndex((t, i) => i >= 1 && !full.slice(0, i).includes(t));
  assert.ok(k >= 1, `a greedy continuation with a new id after the first: ${full.join(',')}`);
  const never = Array.from({ length: 64 }, (_, i) => i).find((t) => !full.includes(t))!;
  const eos = [never, full[k]!]; // Llama 3's shape: [<|end_of_text|>, <|eot_id|>], the second one is what a chat emits
  const gen = async (dir: string): Promise<number[]> => {
    const r = await run('generate', '--model', dir, '--prompt-ids', '1,5,9', '--max-new-tokens', '10', '--greedy', '--json', '--backend', 'wasm');
    assert.equal(r.code, 0, r.err);
    return (JSON.parse(r.out.trim().split('\n').at(-1)!) as { ids: number[] }).ids;
  };
  const editConfig = (dir: string, edit: Record<string, unknown>): void => {
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...(JSON.parse(fs.readFileSync(file, 'utf8')) as object), ...edit }));
  };
  const inConfig = copyFixture('llama-gqa');
  editConfig(inConfig, { eos_token_id: eos });
  assert.deepEqual(await gen(inConfig), full.slice(0, k + 1));
  const inGeneration = copyFixture('llama-gqa');
  editConfig(inGeneration, { eos_token_id: never });
  fs.writeFileSync(path.join(inGeneration, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: eos }));
  assert.deepEqual(await gen(inGeneration), full.slice(0, k + 1));

  const base = (await loadModel(inConfig)).model as LlamaModel;
  const adapter = tmpDir();
  const state = applyMethod(base, '1lora');
  await saveAdapter(adapter, state, { baseModel: inConfig });
  state.dispose();
  base.dispose();
  const out = path.join(tmpDir(), 'merged');
  const m = await run('merge', '--model', inConfig, '--adapter', adapter, '--out', out, '--backend', 'wasm');
  assert.equal(m.code, 0, m.err);
  assert.deepEqual((JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { eos_token_id: unknown }).eos_token_id, eos);
  assert.deepEqual(await gen(out), full.slice(0, k + 1));
});

void test('prompt templates: alpaca is MetaMath\'s prompt, a FILE replaces {prompt}/{instruction}, anything else is exit 2', async () => {
  const { promptTemplate } = await import('../../src/data/template.js');
  const { alpacaPrompt } = await import('../../src/data/metamath.js');
  assert.equal(promptTemplate('alpaca').apply('Q?'), alpacaPrompt('Q?'));
  assert.equal(promptTemplate('none').apply('Q?'), 'Q?');
  const dir = tmpDir();
  const file = path.join(dir, 'chat.txt');
  fs.writeFileSync(file, 'User: {instruction}\nAssistant ($&):');
  assert.equal(promptTemplate(file).apply('a $1 b'), 'User: a $1 b\nAssistant ($&):');
  fs.writeFileSync(path.join(dir, 'bare.txt'), 'no placeholder');
  for (const [t, pattern] of [[path.join(dir, 'bare.txt'), /no \{prompt\} or \{instruction\} placeholder/], ['vicuna', /--template vicuna: neither alpaca nor none/]] as const) {
    const r = await run('generate', '--model', path.join(ROOT_DIR, 'models', 'demo-llama'), '--prompt', 'hi', '--template', t, '--max-new-tokens', '2', '--backend', 'wasm');
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, pattern);
  }
});

void test('generate wraps --prompt in the template the adapter was trained with: train records it from the data, --template overrides it', async () => {
  const { train } = await import('../../src/train/trainer.js');
  const { loadPreset } = await import('../../src/config/index.js');
  const out = tmpDir();
  await train(loadPreset('demo', ['eval.max_batches=1', 'eval.generate=false']), { output: out, maxSteps: 1, quiet: true, backend: 'wasm' });
  const adapter = path.join(out, 'adapter');
  const cfg = JSON.parse(fs.readFileSync(path.join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.onelora_prompt_template, 'alpaca', 'the demo data is built with the Alpaca prompt');
  const model = path.join(ROOT_DIR, 'models', 'demo-llama');
  const gen = async (...extra: string[]): Promise<{ ids: number[]; template: string }> => {
    const r = await run('generate', '--model', model, '--adapter', adapter, '--prompt', 'Ava has 3 apples. How many?', '--max-new-tokens', '6', '--greedy', '--json', '--backend', 'wasm', ...extra);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out.trim().split('\n').at(-1)!) as { ids: number[]; template: string };
  };
  const byDefault = await gen();
  assert.equal(byDefault.template, 'alpaca');
  assert.deepEqual(byDefault.ids, (await gen('--template', 'alpaca')).ids);
  // The same prompt, tokenized as the Alpaca text by hand, is what the model was given.
  const { loadTokenizer } = await import('../../src/data/tokenizer.js');
  const { alpacaPrompt } = await import('../../src/data/metamath.js');
  const ids = loadTokenizer(model).encode(alpacaPrompt('Ava has 3 apples. How many?'), { bos: true });
  const byIds = await run('generate', '--model', model, '--adapter', adapter, '--prompt-ids', ids.join(','), '--max-new-tokens', '6', '--greedy', '--json', '--backend', 'wasm');
  assert.deepEqual((JSON.parse(byIds.out.trim().split('\n').at(-1)!) as { ids: number[] }).ids, byDefault.ids);
  assert.equal((await gen('--template', 'none')).template, 'none');
  fs.rmSync(out, { recursive: true, force: true });
});
