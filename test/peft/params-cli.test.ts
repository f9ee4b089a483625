// `onelora params` through commander (the command is registered here, as main.ts will): JSON on
// the last line, the paper's numbers from the presets, and user errors as exit code 2.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Command } from 'commander';
import { initBackend } from '../../src/backend/select.js';
import { registerParams, withRank } from '../../src/cli/commands/params.js';
import { countDitParams, loadDit, saveDit } from '../../src/models/dit-load.js';
import { applyMethod } from '../../src/peft/apply.js';
import { tmpDir } from '../helpers.js';

async function run(args: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  const program = new Command('onelora').exitOverride();
  registerParams(program);
  let out = '';
  let err = '';
  const w = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'onelora', 'params', ...args]);
  } finally {
    process.stdout.write = w;
    process.stderr.write = e;
  }
  const code = process.exitCode as number | undefined;
  process.exitCode = before;
  return { out, err, code };
}

function lastJson(out: string): Record<string, unknown> {
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

void test('params --json on llama2-7b reproduces Table S6 for 1LoRA and LoRA (QKV)', async () => {
  const a = lastJson((await run(['--model', 'llama2-7b', '--method', '1lora', '--json'])).out);
  assert.equal(a.trainable, 1_359_872);
  assert.equal(a.bytes_fp32, 4 * 1_359_872);
  assert.equal(a.layers, 224);
  assert.equal(a.head, 0);
  assert.equal(a.method, '1lora');
  assert.deepEqual(a.targets, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  const q = lastJson((await run(['--model', 'llama2-7b', '--method', 'lora', '--targets', 'qkv', '--json'])).out);
  assert.equal(q.trainable, 786_432);
});

void test('params on vit-b16 with --rank and --num-labels', async () => {
  const r = lastJson((await run(['--model', 'vit-b16', '--method', 'lora', '--rank', '2', '--num-labels', '10', '--json'])).out);
  assert.equal(r.trainable, 2 * 165_888);
  assert.equal(r.method, 'lora:r=2');
  assert.equal(r.head, 7690);
  const all = lastJson((await run(['--model', 'vit-b16', '--method', 'all', '--json'])).out);
  assert.equal(all.trainable, 85_798_656); // Table S9 "All" 343.19M / 4
  const human = await run(['--model', 'llama2-13b', '--method', 'bitfit']);
  assert.match(human.out, /trainable {2}2,129,920/);
});

void test('params errors are the user\'s: exit 2 with the name', async () => {
  const bad = await run(['--model', 'llama2-7b', '--method', 'lorax']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /unknown method 'lorax' \(known: 1lora, 1lora-random, lora/);
  const key = await run(['--model', 'llama2-7b', '--method', 'lora:rank=2']);
  assert.equal(key.code, 2);
  assert.match(key.err, /unknown key 'rank'/);
  const model = await run(['--model', 'no-such-model', '--method', '1lora']);
  assert.equal(model.code, 2);
  const tg = await run(['--model', 'llama2-7b', '--method', '1lora', '--targets', 'nothing_here']);
  assert.equal(tg.code, 2);
  assert.match(tg.err, /targets 'nothing_here' match no linear layer/);
  assert.equal(withRank('lora+bitfit', 4).text, 'lora:r=4+bitfit');
});

void test('params --model on DiT directories (onelora and diffusers layouts) counts from the config, with no backend started', async () => {
  await initBackend('wasm');
  const model = loadDit('tiny-dit', { seed: 1 });
  const orig = tmpDir('params-dit');
  await saveDit(model, orig);
  const state = applyMethod(model, '1lora');
  const want = { trainable: [...state.trainable.values()].reduce((n, v) => n + v.size, 0), total: countDitParams(model) };
  state.dispose();
  model.dispose();
  const diffusers = tmpDir('params-dit');
  const fix = path.join(import.meta.dirname, '..', 'fixtures', 'dit', 'diffusers-f16');
  fs.copyFileSync(path.join(fix, 'config.json'), path.join(diffusers, 'config.json'));
  fs.writeFileSync(path.join(diffusers, 'diffusion_pytorch_model.safetensors'), zlib.gunzipSync(fs.readFileSync(path.join(fix, 'diffusion_pytorch_model.safetensors.gz'))));
  const cli = (dir: string): Record<string, unknown> => {
    const r = spawnSync('node', ['bin/onelora.js', 'params', '--model', dir, '--method', '1lora', '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return lastJson(r.stdout);
  };
  const a = cli(orig);
  assert.equal(a.family, 'dit');
  assert.equal(a.trainable, want.trainable);
  assert.equal(a.total_params, want.total);
  const d = cli(diffusers);
  assert.equal(d.family, 'dit');
  const built = loadDit(diffusers);
  assert.equal(d.total_params, countDitParams(built));
  built.dispose();
});
