// The human summary of a training run, printed by `train`, `launch` and `coordinator` alike.
import type { TrainSummary } from '../train/trainer.js';

function pct(before: number | undefined, after: number | undefined): string {
  if (before === undefined || after === undefined) return '';
  return ` (${after >= before ? '+' : ''}${((after - before) * 100).toFixed(1)} points)`;
}

/** The human summary of a run: what the default job prints. */
export function formatSummary(s: TrainSummary): string {
  const lines = [`onelora: ${s.method} trained ${s.steps}/${s.total_steps} steps on ${s.backend} in ${s.wall_s.toFixed(1)} s`];
  lines.push(`  trainable parameters: ${s.trainable.toLocaleString('en-US')}${s.head ? ` (+ ${s.head.toLocaleString('en-US')} in the new task head)` : ''}`);
  lines.push(`  peak tensor memory:   ${(s.peak_bytes / 2 ** 20).toFixed(1)} MiB`);
  const b = s.eval_before;
  const a = s.eval_after;
  if (b || a) {
    lines.push(`  validation loss:      ${b?.loss?.toFixed(4) ?? '-'} before → ${a?.loss?.toFixed(4) ?? '-'} after`);
    if (b?.accuracy !== undefined || a?.accuracy !== undefined) {
      const label = s.task === 'causal-lm' ? 'answer accuracy:' : 'accuracy:       ';
      lines.push(`  ${label}      ${((b?.accuracy ?? NaN) * 100).toFixed(1)}% before → ${((a?.accuracy ?? NaN) * 100).toFixed(1)}% after${pct(b?.accuracy, a?.accuracy)}`);
    }
    // Depth (src/eval/depth.ts): RMSE in metres and AbsRel.
    if (b?.rmse !== undefined || a?.rmse !== undefined) {
      lines.push(`  RMSE:                 ${b?.rmse?.toFixed(3) ?? '-'} m before → ${a?.rmse?.toFixed(3) ?? '-'} m after`);
      lines.push(`  AbsRel:               ${b?.abs_rel?.toFixed(4) ?? '-'} before → ${a?.abs_rel?.toFixed(4) ?? '-'} after`);
    }
  }
  if (s.fid) {
    const f = s.fid;
    lines.push(`  sample FID:           ${f.before?.toFixed(2) ?? '-'} before → ${f.after?.toFixed(2) ?? '-'} after (${f.samples} samples vs ${f.reference} held-out images, ${f.network})`);
    lines.push(`  sample grids:         ${[f.grid_before, f.grid_after].filter(Boolean).join(', ')}`);
  }
  for (const ex of s.examples ?? []) {
    lines.push('', `  question: ${ex.question}`, `  before:   ${ex.before}`, `  after:    ${ex.after}`, `  expected: ${ex.expected}`);
  }
  lines.push('', `  outputs in ${s.output} (adapter/, metrics.jsonl, checkpoints/, summary.json)`);
  return lines.join('\n');
}
