// The run configuration schema (docs/config.md). Every object is strict, so a misspelt key is an
// error naming it; every default sits here with the reason for it. docs/config.md is the user's
// version of this file and must change with it.
import { z } from 'zod';
import { BACKEND_CHOICES } from '../backend/choices.js';

/** The backends (src/backend/choices.ts, which loads no tfjs). */
export const BACKENDS = BACKEND_CHOICES;
const TASKS = ['causal-lm', 'classification', 'diffusion', 'depth'] as const;
const METRICS = ['loss', 'accuracy', 'rmse'] as const; // rmse: the depth task's (lower is better)

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const nonEmpty = z.string().min(1);

const model = z
  .object({
    /** A model preset name (the models library lists them), or… */
    preset: nonEmpty.optional(),
    /** …a Hugging Face model directory, relative to the YAML file. */
    path: nonEmpty.optional(),
    /** A tokenizer name (`llama-2`) or, when it contains a `/`, a directory relative to the YAML file. Absent: the model's own. */
    tokenizer: nonEmpty.optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if ((m.preset === undefined) === (m.path === undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `set exactly one of preset or path (got ${m.preset === undefined ? 'neither' : 'both'})` });
    }
  });

const data = z
  .object({
    train: nonEmpty,
    validation: nonEmpty.optional(),
    test: nonEmpty.optional(),
    // 512 tokens hold nearly every MetaMathQA problem with its answer; longer rows are truncated,
    // and activation memory grows with it.
    max_len: posInt.default(512),
  })
  .strict();

const batch = z
  .object({
    /** Samples per optimizer step over all workers; fixed by the recipe, so it has no default. */
    global: posInt,
    /** Samples per forward pass on one worker; bounded by memory, so it has no default. */
    micro: posInt,
    /**
     * Token datasets: sort each global batch by length, deal it to the ranks in snake order and cut
     * each rank's share into micro-batches (src/data/sampler.ts dealByLength): less padding, and no
     * rank waits at the all-reduce for another's longer batch. The step's samples, and its summed
     * gradient, are the same either way.
     */
    group_by_length: z.boolean().default(true),
  })
  .strict();

const optim = z
  .object({
    name: z.enum(['adamw']).default('adamw'), // the paper's only optimizer
    lr: z.number().positive().default(3e-4), // the LLaMA MetaMath presets' lr (MoRA's recipe); the ViT recipes set 2e-5 (paper)
    weight_decay: z.number().nonnegative().default(0), // adapters start at 0 and are tiny: no decay unless asked (ViT: 0.01)
    betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]), // torch AdamW's defaults
    eps: z.number().positive().default(1e-8), // torch AdamW's default
    grad_clip: z.number().nonnegative().default(1.0), // HF Trainer's max_grad_norm; 0 turns clipping off
  })
  .strict();

const schedule = z
  .object({
    name: z.enum(['constant', 'cosine', 'linear']).default('cosine'), // the MoRA/PEFT recipes decay with cosine
    warmup_steps: nonNegInt.default(0), // no warm-up unless asked: 1LoRA starts at b = 0, so the first steps are not wild
    min_lr_ratio: z.number().min(0).max(1).default(0), // cosine/linear decay to lr × this (HF decays to 0)
    /** How long the schedule runs: exactly one of epochs or total_steps, no default (it is the recipe). */
    epochs: posInt.optional(),
    total_steps: posInt.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.epochs === undefined) === (s.total_steps === undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `set exactly one of epochs or total_steps (got ${s.epochs === undefined ? 'neither' : 'both'})` });
    }
  });

const evaluation = z
  .object({
    every: nonNegInt.default(200), // optimizer steps between evaluations (docs/config.md); 0: only after the last step
    max_batches: nonNegInt.default(50), // a bounded validation pass keeps evaluations cheap; 0: the whole split
    generate: z.boolean().default(false), // causal-lm answer accuracy by greedy decoding costs far more than the loss pass
    max_new_tokens: posInt.default(256), // MetaMathQA answers with their reasoning fit in 256 tokens
    /** What "best" means for summary.json; absent: accuracy for classification, loss otherwise. */
    metric: z.enum(METRICS).optional(),
  })
  .strict();

const checkpoint = z
  .object({
    every: nonNegInt.default(50), // optimizer steps between on-disk checkpoints (docs/config.md); the last step is always written
    keep: posInt.default(3), // adapter checkpoints are a few MB; 3 survive a corrupt last write with room to spare
  })
  .strict();

const distributed = z
  .object({
    workers: posInt.default(1), // one process unless launched wider
    /** Fewest live workers to go on with after a loss; absent: all of them (never shrink). */
    min_workers: posInt.optional(),
    max_failures: nonNegInt.default(3), // `launch --max-failures`'s default (docs/architecture.md#failure-policy)
    allreduce_timeout_s: z.number().positive().default(60), // far above one step of a 7B model, well below a stuck job going unnoticed
    /** Seconds of all-reduce allowance per MiB a message carries: 4 s/MiB is a 2 Mbit/s link (docs/distributed.md#timeouts). */
    allreduce_s_per_mib: z.number().nonnegative().default(4),
    heartbeat_timeout_s: z.number().positive().default(30), // a silent rank is lost; 10 s gave false losses on a loaded 2-core machine
    form_timeout_s: z.number().positive().default(300), // how long a group may take to (re-)form before the job fails
    connect_timeout_s: z.number().positive().default(15), // a peer's advertised ZeroMQ endpoint must answer within this
  })
  .strict();

const augment = z
  .object({
    random_resized_crop: z.boolean().default(true), // the paper's ViT recipe (RandomResizedCrop 224 + flip)
    crop_scale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.08, 1]), // torchvision's defaults
    hflip: z.boolean().default(true), // the paper's ViT recipe
    image_size: posInt.default(224), // ViT-B/16's input size
  })
  .strict();

const diffusion = z
  .object({
    timesteps: posInt.default(1000), // DiT's (and DDPM's) training schedule length
    beta_schedule: z.enum(['linear']).default('linear'), // DiT's: β from 1e-4 to 0.02
    class_dropout: z.number().min(0).lt(1).default(0.1), // DiT's label dropout, which makes classifier-free guidance possible
    // A VAE directory: the run then samples before its first step and after its last, writes the
    // grids and measures a tiny FID against the decoded validation latents (docs/dit.md#sample-grids-and-fid).
    vae: nonEmpty.optional(),
    fid_samples: z.number().int().min(2).default(100), // samples per FID measurement (the classes cycle through the validation rows')
    sample_steps: posInt.default(10), // DDIM steps (η 0) of those samples
    sample_cfg: z.number().min(1).default(1.5), // their guidance: DiT's FID setting
  })
  .strict();

const depth = z
  .object({
    input_size: posInt.default(518), // Depth Anything's training and inference side
    random_crop: z.boolean().default(true), // Depth Anything's metric fine-tuning: a random input_size² crop
    hflip: z.boolean().default(true),
    variance_focus: z.number().min(0).max(1).default(0.85), // SiLog's λ (BTS's variance focus)
  })
  .strict();

/** The depth task's settings when a config has no `depth` section. */
export const DEPTH_DEFAULTS = depth.parse({});

/** The shape of a run config before the cross-key checks (used to list and walk keys). */
export const runObject = z
  .object({
    /** Free text shown by preset listings; not part of the result. */
    description: z.string().optional(),
    model,
    /** Method SPEC (grammar: docs/architecture.md#method-spec), parsed by the PEFT library. */
    method: nonEmpty,
    /** Overrides the SPEC's `targets=` for every term that has targets. */
    targets: nonEmpty.optional(),
    /** Overrides the SPEC's `r=` for every term that has a rank. */
    rank: posInt.optional(),
    /** Overrides the SPEC's `alpha=` (PEFT's lora_alpha) for every term that takes one: LoRA, DoRA. */
    alpha: z.number().positive().optional(),
    /** Overrides the SPEC's `dropout=` (PEFT's lora_dropout / vera_dropout) for LoRA, DoRA, VeRA, MoRA. */
    dropout: z.number().min(0).lt(1).optional(),
    task: z.enum(TASKS),
    data,
    batch,
    optim: optim.default({}),
    schedule,
    eval: evaluation.default({}),
    checkpoint: checkpoint.default({}),
    distributed: distributed.default({}),
    augment: augment.default({}), // used by the classification task only
    diffusion: diffusion.default({}), // used by the diffusion task only
    // Used by the depth task only; absent (not defaulted) so other runs' config hashes stay as they were.
    depth: depth.optional(),
    seed: nonNegInt.max(2 ** 32 - 1).default(0),
    /** Absolute optimizer step to stop at; only where to stop, never the schedule (docs/architecture.md#contracts). */
    max_steps: posInt.optional(),
    /** Run output directory (relative to the YAML file); the CLI's --output sets it. */
    output: nonEmpty.optional(),
    backend: z.enum(BACKENDS).optional(), // absent: ONELORA_BACKEND, else auto
  })
  .strict();

/** The full schema: the object plus the checks that span keys, and the defaults that depend on others. */
export const runSchema = runObject
  .superRefine((c, ctx) => {
    const d = c.distributed;
    if (d.min_workers !== undefined && d.min_workers > d.workers) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['distributed', 'min_workers'], message: `must be ≤ distributed.workers (${d.workers}), got ${d.min_workers}` });
    }
    if (c.batch.micro > c.batch.global) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['batch', 'micro'], message: `must be ≤ batch.global (${c.batch.global}), got ${c.batch.micro}` });
    }
  })
  .transform((c) => ({
    ...c,
    eval: { ...c.eval, metric: c.eval.metric ?? (c.task === 'classification' ? 'accuracy' : 'loss') },
    distributed: { ...c.distributed, min_workers: c.distributed.min_workers ?? c.distributed.workers },
  }));

export type RunConfigData = z.output<typeof runSchema>;

/** The validated, frozen run configuration. */
type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends readonly unknown[]
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

export type RunConfig = DeepReadonly<RunConfigData>;
