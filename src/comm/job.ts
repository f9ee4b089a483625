// The job spec: what a worker needs beyond RegisterReply's own fields, sent as its
// `job_spec_json`. It lives with the protocol because both ends speak it (the coordinator writes
// it, the worker decodes it) and neither may import the other; the worker checks it with the
// same zod schema as a config file, so a mismatched coordinator is a clear error, not a crash later.
import { z } from 'zod';
import type { RunConfig } from '../config/index.js';
import { runSchema } from '../config/schema.js';
import { RunError } from '../errors.js';

/** Where the state of the resume step comes from (the reducer's form-group decision). */
export const RESTORE_SOURCES = ['memory', 'disk', 'fresh'] as const;
export type RestoreSource = (typeof RESTORE_SOURCES)[number];

export interface JobSpec {
  config: RunConfig;
  output: string;
  /** The last optimizer step of this job (inclusive). */
  stop_at: number;
  restore_from: RestoreSource;
  /** The rank that broadcasts its in-memory state when `restore_from` is 'memory'. */
  state_source_rank: number | null;
  allreduce_timeout_ms: number;
}

const jobSpecSchema = z
  .object({
    config: runSchema,
    output: z.string().min(1),
    stop_at: z.number().int().nonnegative(),
    restore_from: z.enum(RESTORE_SOURCES),
    state_source_rank: z.number().int().nonnegative().nullable(),
    allreduce_timeout_ms: z.number().positive(),
  })
  .strict();

export function encodeJobSpec(spec: JobSpec): string {
  return JSON.stringify(spec);
}

/** The spec of a RegisterReply, checked; a RunError naming the first wrong field otherwise. */
export function decodeJobSpec(json: string): JobSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new RunError(`the coordinator sent a job spec that is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const r = jobSpecSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.join('.') || '(root)';
    throw new RunError(`the coordinator sent an invalid job spec: ${where}: ${issue?.message ?? 'invalid'} (is it another onelora version?)`);
  }
  return r.data;
}
