// The batch plan: how a global batch splits into workers × micro-batches × accumulation steps.
import type { RunConfig } from '../config/index.js';
import { UserError } from '../errors.js';

/** Micro-batches per optimizer step on each worker: global / (workers × micro), which must divide. */
export function deriveAccumulation(cfg: RunConfig, workers: number = cfg.distributed.workers): number {
  const { global, micro } = cfg.batch;
  if (!Number.isInteger(workers) || workers < 1) throw new UserError(`workers: expected a positive integer, got ${workers}`);
  if (global % (workers * micro) !== 0) {
    throw new UserError(
      `batch.global ${global} is not divisible by workers ${workers} × batch.micro ${micro} = ${workers * micro}; ` +
        'choose a global batch that is a multiple of workers × micro-batch',
    );
  }
  return global / (workers * micro);
}
