// Shared by the model tests: fixture paths, the torch reference outputs, comparisons.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { tf } from '../../src/backend/tf.js';
import type { DitModel } from '../../src/models/dit.js';
import { Rng } from '../../src/nn/rng.js';

export const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'models');

export interface LlamaExpected {
  input_ids: number[][];
  labels: number[][];
  logits: number[];
  loss_sum: number;
  greedy_prompt: number[];
  greedy: number[];
}
interface ImageCase {
  pixels: number[];
  shape: [number, number, number, number];
  logits: number[];
}
export interface Expected {
  'llama-gqa': LlamaExpected;
  'llama-f16': LlamaExpected;
  'llama-tied-sharded': LlamaExpected;
  vit: { native: ImageCase; resized: ImageCase };
  'vit-registers': { pixels: number[]; shape: [number, number, number, number]; features: number[] };
}

export const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as Expected;

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

import { tmpDir as sharedTmpDir } from '../helpers.js';

export const tmpDir = (): string => sharedTmpDir('models');

/** Copies a fixture directory so a test can break it. */
export function copyFixture(name: string): string {
  const dst = tmpDir();
  for (const f of fs.readdirSync(path.join(FIXTURES, name))) fs.copyFileSync(path.join(FIXTURES, name, f), path.join(dst, f));
  return dst;
}

export function values(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

/** Runs `onelora ARGS` in this process with the given commands registered; stdout, stderr and the exit code the action set. */
export async function runCommands(registers: readonly ((p: Command) => void)[], ...args: string[]): Promise<{ out: string; err: string; code: number }> {
  const program = new Command('onelora').exitOverride();
  for (const register of registers) register(program);
  let out = '';
  let err = '';
  const [o, e] = [process.stdout.write.bind(process.stdout), process.stderr.write.bind(process.stderr)];
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  process.exitCode = 0;
  try {
    await program.parseAsync(['node', 'onelora', ...args]);
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { out, err, code };
}

/** A DiT's output on a fixed seeded batch of two (timesteps 10 and 700, classes 0 and classes − 1). */
export async function ditForward(model: DitModel, classes: number): Promise<Float32Array> {
  const c = model.config;
  const r = new Rng(5);
  const x = tf.tensor4d(Float32Array.from({ length: 2 * c.inChannels * c.inputSize ** 2 }, () => r.uniform(-1, 1)), [2, c.inChannels, c.inputSize, c.inputSize]);
  const y = model.forward(x, [10, 700], [0, classes - 1]);
  const v = Float32Array.from(await y.data());
  tf.dispose([x, y]);
  return v;
}
