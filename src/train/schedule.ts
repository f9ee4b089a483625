// Learning-rate schedules: constant, or linear warm-up followed by cosine or linear decay to zero
// over the run's total optimizer steps (from the config's epochs or schedule.total_steps; never
// from --max-steps, which only says where to stop: docs/architecture.md#contracts).

export type ScheduleName = 'constant' | 'cosine' | 'linear';

export interface ScheduleSpec {
  readonly name: ScheduleName;
  readonly baseLr: number;
  readonly warmupSteps: number;
  readonly totalSteps: number;
  /** Cosine/linear decay ends at baseLr × this (0 as transformers' schedules). */
  readonly minLrRatio?: number;
}

/** The learning rate for optimizer step `step` (0-based: the first update uses step 0). */
export function learningRate(s: ScheduleSpec, step: number): number {
  // Warm-up as transformers' get_*_schedule_with_warmup: lr · (step+1)/warmup is avoided there too,
  // it uses step/warmup, so the very first update has lr 0; we follow it for comparability.
  if (s.warmupSteps > 0 && step < s.warmupSteps) return (s.baseLr * step) / s.warmupSteps;
  if (s.name === 'constant') return s.baseLr;
  const decaySteps = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / decaySteps);
  const floor = s.baseLr * (s.minLrRatio ?? 0);
  const shape = s.name === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return floor + (s.baseLr - floor) * shape;
}
