// The task registry: one explicit list (docs/internals.md#explicit-registries).
import { DEPTH_DEFAULTS, type RunConfig } from '../../config/index.js';
import type { Dataset } from '../../data/arrow-file.js';
import type { Tokenizer } from '../../data/tokenizer.js';
import { UserError } from '../../errors.js';
import type { Task } from '../task.js';
import { CausalLmTask } from './causal-lm.js';
import { ClassificationTask } from './classification.js';
import { DepthTask } from './depth.js';
import { DiffusionTask } from './diffusion.js';

export function createTask(cfg: RunConfig, train: Dataset, tokenizer: Tokenizer | null): Task {
  const kind = train.info.kind;
  const expect = { 'causal-lm': 'lm', classification: 'image', diffusion: 'latent', depth: 'depth' }[cfg.task];
  if (kind !== expect) throw new UserError(`data.train: ${train.file} holds ${kind} rows, task ${cfg.task} needs ${expect} rows`);
  switch (cfg.task) {
    case 'causal-lm':
      return new CausalLmTask(tokenizer, { generate: cfg.eval.generate, maxNewTokens: cfg.eval.max_new_tokens }) as unknown as Task;
    case 'classification':
      return new ClassificationTask(cfg.augment, train.info) as unknown as Task;
    case 'diffusion':
      return new DiffusionTask(cfg.diffusion) as unknown as Task;
    case 'depth':
      return new DepthTask(cfg.depth ?? DEPTH_DEFAULTS, train.info) as unknown as Task;
  }
}
