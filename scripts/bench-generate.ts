// Benchmark (not a test): KV-cache generation speed of LLaMA-shaped models on this machine's
// backend. Prints tokens/s and the per-token time in windows along the sequence — with the cache
// it should stay flat (each step is O(layers·D²) matmul work plus an O(S) attention read),
// without it each step recomputes the whole sequence.
//   node --import tsx scripts/bench-generate.ts [--backend wasm] [--tokens 256]
import { initBackend } from '../src/backend/select.js';
import { randomModel } from '../src/models/hf.js';
import type { LlamaModel } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama-config.js';
import { PRESETS } from '../src/models/presets.js';
import { llamaFamily, loadModel } from '../src/models/registry.js';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const backend = await initBackend(arg('--backend', 'wasm'));
const tokens = Number(arg('--tokens', '256'));

async function bench(label: string, model: LlamaModel, kvCache: boolean, n: number): Promise<Record<string, unknown>> {
  const prompt = [1, 5, 9, 13, 17, 21, 25, 29];
  await model.generate(prompt, { maxNewTokens: 4, greedy: true, eosId: null, kvCache }); // warm-up: kernels, RoPE table, masks
  const stamps: number[] = [];
  const t0 = performance.now();
  await model.generate(prompt, { maxNewTokens: n, greedy: true, eosId: null, kvCache, onToken: () => stamps.push(performance.now()) });
  const total = (performance.now() - t0) / 1000;
  const window = (from: number, to: number): number => {
    const a = Math.min(from, stamps.length - 1);
    const b = Math.min(to, stamps.length - 1);
    return b > a ? (stamps[b]! - stamps[a]!) / (b - a) : NaN;
  };
  const q = Math.max(2, Math.floor(n / 8));
  return {
    model: label, kvCache, newTokens: n, tokensPerS: +(n / total).toFixed(1),
    msPerTokenFirst: +window(1, q).toFixed(2), msPerTokenLast: +window(n - q, n - 1).toFixed(2),
  };
}

const tiny = (await loadModel('tiny-llama')).model as LlamaModel;
// LLaMA-2's vocabulary with 4 layers of width 256: the head dominates, as in small real models.
const smallRaw = { ...PRESETS['tiny-llama']!.hf, vocab_size: 32000, hidden_size: 256, intermediate_size: 688, num_attention_heads: 8, num_key_value_heads: 8, num_hidden_layers: 4 };
const small = randomModel(llamaFamily, parseLlamaConfig(smallRaw, 'bench'), 0, smallRaw);
const rows = [
  await bench('tiny-llama (2×64, V=256)', tiny, true, tokens),
  await bench('tiny-llama (2×64, V=256)', tiny, false, Math.min(tokens, 128)),
  await bench('small (4×256, V=32000)', small, true, tokens),
  await bench('small (4×256, V=32000)', small, false, Math.min(tokens, 128)),
];
console.log(JSON.stringify({ backend: backend.name, rows }, null, 1));
