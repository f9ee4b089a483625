// The pre-training loop shared by the demo-base scripts (make-demo-vit.ts, make-demo-dit.ts):
// seeded epochs over an Arrow split, one micro-batch per step through onelora's TrainEngine, the
// loss logged every `logEvery` steps. Deterministic for a seed, so the committed bases can be
// rebuilt bit for bit on the same backend.
import type { Dataset } from '../../src/data/arrow-file.js';
import { Rng } from '../../src/nn/rng.js';
import type { Logger } from '../../src/log.js';
import type { TrainEngine } from '../../src/train/engine.js';

export interface PretrainOptions {
  steps: number;
  batch: number;
  seed: number;
  log: Logger;
  logEvery: number;
  /** Normalisation units of a micro-batch (the task's countUnits). */
  units: (rows: ReturnType<Dataset['rows']>) => number;
}

export async function pretrain(engine: TrainEngine, train: Dataset, o: PretrainOptions): Promise<void> {
  const perEpoch = Math.floor(train.numRows / o.batch);
  let order: ArrayLike<number> = [];
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    const epoch = Math.floor(step / perEpoch);
    if (step % perEpoch === 0) order = Rng.from(o.seed, epoch).permutation(train.numRows);
    const ids = Array.from({ length: o.batch }, (_, i) => order[(step % perEpoch) * o.batch + i]!);
    const mb = { rows: train.rows(ids), ctx: { seed: o.seed, epoch, sampleIds: ids, training: true } };
    const { grad, lossSum } = await engine.computeGrads([mb], o.units(mb.rows));
    engine.applyUpdate(grad, step);
    if (step % o.logEvery === 0 || step === o.steps - 1) o.log.info({ step, loss: Number((lossSum / o.batch).toFixed(4)), s: Math.round((performance.now() - t0) / 1000) }, 'pre-training');
  }
}
