// Causal language modelling on MetaMath-format rows (docs/architecture.md#datasets): the loss is next-token
// cross-entropy on response tokens only (labels = -100 on the prompt), summed here and divided by
// the global count of label tokens by the trainer (§7). Evaluation adds answer accuracy from greedy
// generation: the text after "The answer is:" against the reference's.
import type { RecordBatch } from 'apache-arrow';
import { tf } from '../../backend/tf.js';
import { readLm } from '../../data/arrow.js';
import type { Tokenizer } from '../../data/tokenizer.js';
import type { AdaptableModel } from '../../nn/modules.js';
import type { BatchContext, Task, TaskExample } from '../task.js';

export interface CausalLmModel extends AdaptableModel {
  /** Σ next-token cross-entropy over positions whose shifted label ≠ -100. ids, labels: int32 [B, T]. */
  lossSum(ids: tf.Tensor2D, labels: tf.Tensor2D): tf.Scalar;
  generate(promptIds: number[], opts: { maxNewTokens: number; greedy?: boolean; eosId?: number; seed?: number }): Promise<number[]>;
}

import { IGNORE_INDEX } from '../../data/metamath.js';

/** Right-pads a micro-batch to its longest row: pads are never attended to under the causal mask. */
function padBatch(rows: RecordBatch, padId: number): { ids: Int32Array; labels: Int32Array; b: number; t: number } {
  const { inputIds, labels } = readLm(rows);
  const b = inputIds.length;
  const t = Math.max(1, ...inputIds.map((r) => r.length));
  const ids = new Int32Array(b * t).fill(padId);
  const lab = new Int32Array(b * t).fill(IGNORE_INDEX);
  inputIds.forEach((r, i) => ids.set(r, i * t));
  labels.forEach((r, i) => lab.set(r, i * t));
  return { ids, labels: lab, b, t };
}

/** Leading label positions that are -100: the prompt. */
function promptLength(labels: Int32Array): number {
  let p = 0;
  while (p < labels.length && labels[p] === IGNORE_INDEX) p++;
  return p;
}

/** The number after "The answer is:" (MetaMathQA's last line), normalised; null when absent. */
function extractAnswer(text: string): string | null {
  const m = /The answer is:?\s*([-+]?[$]?[\d,]*\.?\d+)/i.exec(text);
  if (!m?.[1]) return null;
  const n = Number(m[1].replace(/[$,]/g, ''));
  return Number.isFinite(n) ? String(n) : m[1];
}

export class CausalLmTask implements Task<CausalLmModel> {
  readonly name = 'causal-lm' as const;
  readonly metric = { name: 'loss', lowerIsBetter: true };
  /** Present with a tokenizer only: without one there is no text to show. */
  readonly examples?: (model: CausalLmModel, rows: RecordBatch) => Promise<TaskExample[]>;

  constructor(
    private readonly tokenizer: Tokenizer | null,
    private readonly opts: { generate: boolean; maxNewTokens: number; padId?: number } = { generate: false, maxNewTokens: 64 },
  ) {
    if (tokenizer) this.examples = (model, rows) => this.answer(tokenizer, model, rows);
  }

  countUnits(rows: RecordBatch): number {
    // Position t predicts labels[t + 1], so the first label of each row never counts.
    let n = 0;
    for (const r of readLm(rows).labels) for (let i = 1; i < r.length; i++) if (r[i] !== IGNORE_INDEX) n++;
    return n;
  }

  lossSum(model: CausalLmModel, rows: RecordBatch, _ctx: BatchContext): tf.Scalar {
    const { ids, labels, b, t } = padBatch(rows, this.opts.padId ?? this.tokenizer?.padId ?? 0);
    return tf.tidy(() => model.lossSum(tf.tensor2d(ids, [b, t], 'int32'), tf.tensor2d(labels, [b, t], 'int32')));
  }

  async evaluate(model: CausalLmModel, batches: Iterable<{ rows: RecordBatch; ctx: BatchContext }> | AsyncIterable<{ rows: RecordBatch; ctx: BatchContext }>): Promise<Record<string, number>> {
    let lossSum = 0;
    let units = 0;
    let correct = 0;
    let asked = 0;
    for await (const { rows, ctx } of batches) {
      units += this.countUnits(rows);
      const l = this.lossSum(model, rows, ctx);
      lossSum += (await l.data())[0] as number;
      l.dispose();
      if (this.opts.generate && this.tokenizer) {
        for (const r of await this.answerChecks(model, rows)) {
          asked++;
          if (r) correct++;
        }
      }
    }
    const out: Record<string, number> = { loss: units > 0 ? lossSum / units : NaN, tokens: units };
    if (this.opts.generate && this.tokenizer) {
      out.accuracy = asked > 0 ? correct / asked : NaN;
      out.answered = asked;
    }
    return out;
  }

  /** Each row's question, the model's greedy answer (the generated text) and the reference response. */
  private async answer(tok: Tokenizer, model: CausalLmModel, rows: RecordBatch): Promise<TaskExample[]> {
    const { inputIds, labels } = readLm(rows);
    const answers: TaskExample[] = [];
    for (const [i, ids] of inputIds.entries()) {
      const p = promptLength(labels[i] as Int32Array);
      const prompt = Array.from(ids.subarray(0, p));
      const out = await model.generate(prompt, { maxNewTokens: this.opts.maxNewTokens, greedy: true, eosId: tok.eosId });
      const question = /### Instruction:\s*([\s\S]*?)\s*### Response:/.exec(tok.decode(prompt))?.[1] ?? tok.decode(prompt);
      answers.push({ question: question.trim(), answer: tok.decode(out).trim(), expected: tok.decode(Array.from(ids.subarray(p))).trim() });
    }
    return answers;
  }

  /** Greedy-decodes each row's prompt and compares its answer with the reference response's. */
  async answerChecks(model: CausalLmModel, rows: RecordBatch): Promise<boolean[]> {
    const tok = this.tokenizer as Tokenizer;
    const { inputIds, labels } = readLm(rows);
    const checks: boolean[] = [];
    for (const [i, ids] of inputIds.entries()) {
      const p = promptLength(labels[i] as Int32Array);
      const reference = extractAnswer(tok.decode(Array.from(ids.subarray(p))));
      const out = await model.generate(Array.from(ids.subarray(0, p)), { maxNewTokens: this.opts.maxNewTokens, greedy: true, eosId: tok.eosId });
      checks.push(reference !== null && extractAnswer(tok.decode(out)) === reference);
    }
    return checks;
  }
}
