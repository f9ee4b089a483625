// AdamW, global-norm clipping and the learning-rate schedule against PyTorch: the fixture is
// torch.optim.AdamW + clip_grad_norm_ + LambdaLR over fixed gradients, made by
// scripts/make-optim-fixture.py. Each step is replayed in the order TrainEngine.applyUpdate uses
// (clip, learningRate(step), AdamW.step with the no-decay mask) on the fused float32 buffer.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AdamW, clipGlobalNorm } from '../../src/train/optimizer.js';
import { learningRate, type ScheduleName } from '../../src/train/schedule.js';

type Named = Record<string, number[]>;
interface Step {
  grad: Named;
  lr: number;
  grad_norm: number | null;
  params: Named;
}
interface Case {
  name: string;
  schedule: ScheduleName;
  base_lr: number;
  warmup: number;
  total: number;
  min_lr_ratio: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
  grad_clip: number;
  initial: Named;
  steps: Step[];
  final_state: Record<string, { exp_avg: number[]; exp_avg_sq: number[] }>;
}
interface Fixture {
  order: string[];
  no_decay: string[];
  cases: Case[];
}

const fixture = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'optim', 'adamw.json'), 'utf8')) as Fixture;

/** The fixture's per-tensor values in onelora's fused layout (tensors in `order`, concatenated). */
const fuse = (named: Named): Float32Array => Float32Array.from(fixture.order.flatMap((k) => named[k] as number[]));

/** Float32 agreement: a few ulps of the value, or 1e-7 absolute near zero. */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-6, atol = 1e-7): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    assert.ok(Math.abs(a - e) <= rtol * Math.abs(e) + atol, `${what}[${i}]: onelora ${a}, torch ${e}`);
  }
}

const decayMask = Uint8Array.from(fixture.order.flatMap((k) => {
  const n = (fixture.cases[0] as Case).initial[k]!.length;
  return Array.from({ length: n }, () => (fixture.no_decay.includes(k) ? 0 : 1));
}));

void describe('AdamW, clipping and the schedule equal torch.optim.AdamW + clip_grad_norm_ + LambdaLR', () => {
  for (const c of fixture.cases) {
    void it(c.name, () => {
      const spec = { name: c.schedule, baseLr: c.base_lr, warmupSteps: c.warmup, totalSteps: c.total, minLrRatio: c.min_lr_ratio };
      const params = fuse(c.initial);
      const opt = new AdamW(params.length, { betas: c.betas, eps: c.eps, weightDecay: c.weight_decay });
      c.steps.forEach((s, step) => {
        const lr = learningRate(spec, step);
        assert.ok(Math.abs(lr - s.lr) <= 1e-12 * Math.max(s.lr, 1e-12), `step ${step}: lr ${lr}, torch ${s.lr}`);
        const grad = fuse(s.grad);
        const norm = clipGlobalNorm(grad, c.grad_clip);
        if (s.grad_norm !== null) assert.ok(Math.abs(norm - s.grad_norm) <= 1e-6 * s.grad_norm, `step ${step}: grad norm ${norm}, torch ${s.grad_norm}`);
        opt.step(params, grad, lr, decayMask);
        close(params, fuse(s.params), `${c.name} step ${step} params`);
      });
      assert.equal(opt.t, c.steps.length);
      close(opt.m, fuse(Object.fromEntries(fixture.order.map((k) => [k, c.final_state[k]!.exp_avg]))), `${c.name} exp_avg`);
      close(opt.v, fuse(Object.fromEntries(fixture.order.map((k) => [k, c.final_state[k]!.exp_avg_sq]))), `${c.name} exp_avg_sq`, 1e-6, 1e-12);
    });
  }
});
