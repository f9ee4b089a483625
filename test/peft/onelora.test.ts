// 1LoRA's memory claim (arXiv 2503.08333 §3.2; docs/architecture.md#the-method: the saving
// exists only if the implementation realises it): its backward keeps s = 1ᵀx (one number per row), never x, while LoRA r = 1 must keep x for
// dA. Measured on one layer: the bytes alive when the backward starts (a probe op at the output
// records tf.memory() from its gradient), and tf.profile's peak over the whole gradient call.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend, tf } from '../../src/backend/select.js';
import { customOp } from '../../src/backend/linear.js';
import { LinearModule } from '../../src/nn/modules.js';
import { uniformArray } from '../../src/peft/init.js';
import { LoraAdapter } from '../../src/peft/lora.js';
import { OneLoraAdapter } from '../../src/peft/onelora.js';
import { parseMethodSpec } from '../../src/peft/spec.js';

await initBackend('wasm');
type T2 = tf.Tensor2D;

const [N, K, D] = [128, 1024, 8];
const X_BYTES = N * K * 4;

async function measure(layer: LinearModule, vars: tf.Variable[]): Promise<{ retained: number; peak: number }> {
  const x0 = tf.tensor2d(uniformArray(N * K, 1, 1, 'x'), [N, K]);
  let atBackward = 0;
  const probe = (y: T2): T2 => customOp<T2>([y], ([t]) => ({
    value: tf.add(t as T2, 0),
    gradFunc: (dy) => {
      atBackward = tf.memory().numBytes;
      return dy;
    },
  }));
  // x is made inside the step by a custom op (as the layers of onelora's models produce their
  // activations), so only what the adapter saves for the backward keeps it alive. (Measured: the
  // output of a plain tfjs op such as relu or add stays alive through the backward whatever its
  // consumer saves, so it could not show the difference.)
  const source = (t: T2): T2 => customOp<T2>([t], ([ti]) => ({ value: tf.mul(ti as T2, 1), gradFunc: (dy) => dy }));
  const step = (): void => {
    const { value, grads } = tf.variableGrads(() => tf.sum(probe(layer.forward(source(x0)))), vars);
    value.dispose();
    tf.dispose(grads);
  };
  step(); // fills the frozen-transpose cache
  const before = tf.memory().numBytes;
  const peak = (await tf.profile(() => step())).peakBytes - before;
  step();
  x0.dispose();
  return { retained: atBackward - before, peak };
}

void test('1LoRA backward does not retain x; LoRA r = 1 on the same layer does', async () => {
  const w = (): tf.Variable<tf.Rank.R2> => tf.variable(tf.tensor2d(uniformArray(K * D, 0.1, 2, 'w'), [K, D]));
  const l1 = new LinearModule('one', 'other', w(), null);
  const one = new OneLoraAdapter(l1, null);
  one.b.assign(tf.ones([D]));
  l1.adapter = one;
  const l2 = new LinearModule('lora', 'other', w(), null);
  const ctx = { seed: 0, term: parseMethodSpec('lora:r=1').terms[0]!, layers: [l2], shared: new Map() };
  const lora = new LoraAdapter(l2, ctx);
  lora.B.assign(tf.ones([1, D]));
  l2.adapter = lora;
  const m1 = await measure(l1, [one.b]);
  const m2 = await measure(l2, [lora.A, lora.B]);
  // 1LoRA keeps s [N, 1] plus the upstream gradient [N, d]: far below one copy of x.
  assert.ok(m1.retained < X_BYTES / 8, `1LoRA retained ${m1.retained} B (x is ${X_BYTES} B)`);
  assert.ok(m2.retained >= X_BYTES, `LoRA retained ${m2.retained} B, expected ≥ x (${X_BYTES} B)`);
  assert.ok(m1.retained < m2.retained);
  assert.ok(m1.peak < m2.peak, `peak 1LoRA ${m1.peak} B vs LoRA ${m2.peak} B`);
});
