// One optimizer step on one worker (docs/architecture.md#one-training-step): the rank's micro-batches from the
// coordinator's stream, gradients of the globally normalised loss (TrainEngine.computeGrads), one
// all-reduce of the fused trainable gradients with the loss sum appended, the identical AdamW update
// on every rank, the in-memory commit, the report, and rank 0's checkpoint.
import fs from 'node:fs';
import { allReduceSum } from '../src/comm/allreduce.js';
import type { CoordinatorClient, ResumeState, StartStep, StepReport } from '../src/comm/proto.js';
import type { Transport } from '../src/comm/transport.js';
import { fromIpc } from '../src/data/arrow.js';
import { sampleAt } from '../src/data/sampler.js';
import type { JobSpec } from '../src/comm/job.js';
import { RunError } from '../src/errors.js';
import type { MicroBatch } from '../src/train/engine.js';
import { evaluatesBefore, finishStep, scheduleOf } from '../src/train/loop.js';
import { answerExamples, checkpoint, evaluate, runParams, type RunSetup } from '../src/train/setup.js';
import { updateBest, type Best } from '../src/train/metrics.js';

export type Snapshot = ReturnType<RunSetup['engine']['snapshot']>;

export interface StepContext {
  client: CoordinatorClient;
  transport: Transport;
  run: RunSetup;
  spec: JobSpec;
  rank: number;
  generation: number;
  /** step → committed state; the last two are kept (a re-formed group restores the older one). */
  snapshots: Map<number, Snapshot>;
  /** Rank 0's best evaluation so far (kept across groups), written into its checkpoints. */
  best: { value: Best };
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

/**
 * Test-only fault injection, `ONELORA_TEST_FAULT=kind:rank:step:markerFile[:ms]`: kind `kill` (SIGKILL
 * at the start of the step), `kill-in-checkpoint` (SIGKILL halfway through writing the step's
 * checkpoint), `stall` (hold the main thread `ms` milliseconds at the start of the step, as one
 * long synchronous computation does) or `kill-before-register` (step 0: SIGKILL before the first
 * Register). The marker file makes it fire once, not again in the restarted process.
 */
export function fault(kind: string, rank: number, step: number): boolean {
  const [k, r, s, marker, ms] = (process.env.ONELORA_TEST_FAULT ?? '').split(':');
  if (k !== kind || Number(r) !== rank || Number(s) !== step || !marker || fs.existsSync(marker)) return false;
  fs.writeFileSync(marker, `${process.pid}\n`);
  if (kind === 'stall') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(ms));
  else process.kill(process.pid, 'SIGKILL');
  return true;
}

/** ONELORA_SAMPLE_LOG=DIR: every rank appends the dataset rows it trained on (for audits and tests). */
function logSamples(c: StepContext, step: number, ids: number[]): void {
  const dir = process.env.ONELORA_SAMPLE_LOG;
  const { rank, generation, transport: t } = c;
  const line = { step, rank, generation, sample_ids: ids, bytes_sent: t.stats.bytesSent, bytes_received: t.stats.bytesReceived, floats: c.run.engine.fused.size + 1 };
  if (dir) fs.appendFileSync(`${dir}/samples-rank-${rank}.jsonl`, JSON.stringify(line) + '\n');
}

export async function runStep(c: StepContext, start: StartStep): Promise<void> {
  const { run, rank, generation, client } = c;
  const { cfg, engine } = run;
  const step = start.step;
  fault('kill', rank, step);
  fault('stall', rank, step);
  const t0 = performance.now();
  const epoch = sampleAt(start.samples_seen, { epochSize: run.train.numRows, globalBatch: cfg.batch.global, seed: cfg.seed }).epoch;
  const micro: MicroBatch[] = [];
  let units = 1;
  let samples = 0;
  const sampleIds: number[] = [];
  for await (const mb of client.batches({ rank, generation, step })) {
    const rows = fromIpc(mb.arrow_ipc);
    micro.push({ rows, ctx: { seed: cfg.seed, epoch, sampleIds: mb.sample_ids, training: true } });
    units = Math.max(1, mb.global_label_count);
    samples += rows.numRows;
    sampleIds.push(...mb.sample_ids);
  }
  const metrics: Record<string, number> = {};
  // Rank 0 evaluates for the group (every rank holds the same weights after each update).
  const evalOn = rank === 0 && run.validation !== null;
  // Held-out examples answered before the run's first step and after its last, as a single process.
  const answers: { before?: unknown; after?: unknown } = {};
  if (evalOn && evaluatesBefore(step)) {
    for (const [k, v] of Object.entries((await evaluate(run)) ?? {})) metrics[`eval_before.${k}`] = v;
    answers.before = (await answerExamples(run)) ?? undefined;
  }
  const t1 = performance.now();
  const { grad, lossSum, peakBytes } = await engine.computeGrads(micro, units);
  const t2 = performance.now();
  const report = (r: Partial<StepReport>): Promise<unknown> =>
    client.reportStep({ rank, generation, step, loss: lossSum / units, metrics, timing: null, nan: false, samples, examples_json: '', ...r });
  if (!Number.isFinite(lossSum) || grad.some((g) => !Number.isFinite(g))) {
    await report({ nan: true });
    return;
  }
  // One message per step: the fused gradients with this rank's loss sum appended.
  const buf = new Float32Array(grad.length + 1);
  buf.set(grad);
  buf[grad.length] = lossSum;
  await allReduceSum(c.transport, buf, step, { timeoutMs: c.spec.allreduce_timeout_ms, msPerMiB: c.spec.config.distributed.allreduce_s_per_mib * 1000 });
  const t3 = performance.now();
  // Another rank's gradient was not finite: that rank reports the NaN and the coordinator stops the run.
  if (!Number.isFinite(buf[grad.length]!)) return;
  const { lr, gradNorm } = engine.applyUpdate(buf.subarray(0, grad.length), step - 1);
  c.snapshots.set(step, engine.snapshot());
  c.snapshots.delete(step - 2);
  const samplesSeen = start.samples_seen + cfg.batch.global;
  // The coordinator's state machine decided whether this step is checkpointed (the same rule as a
  // single process); rank 0 writes it and commits it after reporting the step.
  await finishStep(step, scheduleOf(cfg, c.spec.stop_at), {
    evaluate: () => (evalOn ? evaluate(run) : Promise.resolve(null)),
    record: async (ev) => {
      if (ev) {
        for (const [k, v] of Object.entries(ev)) metrics[`eval.${k}`] = v;
        c.best.value = updateBest(c.best.value, step, cfg.eval.metric, ev);
      }
      Object.assign(metrics, { lr, grad_norm: gradNorm, peak_bytes: peakBytes, ...runParams(run), bytes_sent: c.transport.stats.bytesSent, bytes_received: c.transport.stats.bytesReceived });
      logSamples(c, step, sampleIds);
      if (evalOn && step === c.spec.stop_at) answers.after = (await answerExamples(run)) ?? undefined;
      const examples = answers.before || answers.after ? JSON.stringify(answers) : '';
      await report({ timing: { data_wait_s: (t1 - t0) / 1000, compute_s: (t2 - t1) / 1000, allreduce_s: (t3 - t2) / 1000, optimizer_s: seconds(t3) }, examples_json: examples });
    },
    checkpoint: async () => {
      const dir = await checkpoint(run, c.spec.output, { step, samplesSeen, best: c.best.value }, c.transport.size, () => fault('kill-in-checkpoint', rank, step));
      await client.commitCheckpoint({ rank, generation, step, path: dir, checksums: {}, samples_seen: samplesSeen, epoch });
    },
  }, start.checkpoint && rank === 0);
}

/** Rank 0's checkpoint of committed step `at` (held in memory) when an interrupted run stops between checkpoints. */
export async function checkpointAtStop(c: StepContext, at: ResumeState): Promise<void> {
  const snap = c.snapshots.get(at.step);
  if (!snap) throw new RunError(`rank ${c.rank}: asked to checkpoint step ${at.step}, which it does not hold`);
  c.run.engine.restore(snap);
  const dir = await checkpoint(c.run, c.spec.output, { step: at.step, samplesSeen: at.samples_seen, best: c.best.value }, c.transport.size);
  await c.client.commitCheckpoint({ rank: c.rank, generation: c.generation, step: at.step, path: dir, checksums: {}, samples_seen: at.samples_seen, epoch: at.epoch });
}
