// Driver for docs/performance.md: `onelora bench step` for every method at the shape, each
// in a fresh process, interleaved with the PyTorch reference (scripts/bench-torch-step.py under
// Debian's /usr/bin/python3), then the ratios the targets are stated in. Run: npx tsx scripts/bench-step-all.ts [rounds]
// (ONELORA_BENCH_METHODS selects methods; see below)
import { execFileSync } from 'node:child_process';
import { median } from '../src/bench/kernels.js';

// ONELORA_BENCH_METHODS=1lora,bitfit,lora:r=1 runs a subset (1lora first: the ratios are read against it).
const ALL = ['1lora', 'bitfit', 'lora:r=1', 'dora', 'vera', 'mora1', 'mora6', 'all'];
const METHODS = process.env.ONELORA_BENCH_METHODS?.split(',') ?? ALL;
const TORCH = ['1lora', 'bitfit', 'lora:r=1', 'all'];
const rounds = Number(process.argv[2] ?? 1);

interface Row { step_s: number; tokens_per_s: number; peak_bytes: number | null; trainable: number }
const lastJson = (out: string): Row => JSON.parse(out.trim().split('\n').pop() as string) as Row;
const ours = new Map<string, Row[]>();
const torch = new Map<string, Row[]>();
for (let r = 0; r < rounds; r++) {
  for (const m of METHODS) {
    const row = lastJson(execFileSync('node', ['bin/onelora.js', 'bench', 'step', '--method', m, '--backend', 'wasm', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    ours.set(m, [...(ours.get(m) ?? []), row]);
    process.stderr.write(`onelora ${m}: ${JSON.stringify(row)}\n`);
    if (TORCH.includes(m)) {
      const t = lastJson(execFileSync('/usr/bin/python3', ['scripts/bench-torch-step.py', '--method', m, '--json'], { encoding: 'utf8' }));
      torch.set(m, [...(torch.get(m) ?? []), t]);
      process.stderr.write(`torch   ${m}: ${JSON.stringify(t)}\n`);
    }
  }
}
const pick = (m: Map<string, Row[]>, k: string, f: (r: Row) => number): number => median((m.get(k) ?? []).map(f));
const table = METHODS.map((m) => ({
  method: m, step_s: pick(ours, m, (r) => r.step_s), tokens_per_s: pick(ours, m, (r) => r.tokens_per_s),
  peak_mb: Math.round(pick(ours, m, (r) => r.peak_bytes ?? 0) / 1e5) / 10, trainable: pick(ours, m, (r) => r.trainable),
  torch_tokens_per_s: TORCH.includes(m) ? pick(torch, m, (r) => r.tokens_per_s) : null,
}));
const r3 = (v: number): number => Math.round(v * 1000) / 1000;
const one = table[0] as (typeof table)[number];
const ratios = {
  tokens_vs_torch_1lora: r3(one.tokens_per_s / (one.torch_tokens_per_s as number)),
  step_1lora_vs_bitfit: r3(one.step_s / pick(ours, 'bitfit', (r) => r.step_s)),
  peak_1lora_vs_lora_r1: r3(pick(ours, '1lora', (r) => r.peak_bytes ?? 0) / pick(ours, 'lora:r=1', (r) => r.peak_bytes ?? 0)),
};
console.log(JSON.stringify({ rounds, table, ratios }, null, 2));
