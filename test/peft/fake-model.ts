// A tiny AdaptableModel built from the real LinearModule/NormModule, for the PEFT tests: one
// "transformer layer" (q, k, v, o, up, down, a fused-free LLaMA-like naming) and a head, with
// small random weights from a fixed seed. Odd widths on purpose (MoRA padding, VeRA slicing).
import { tf } from '../../src/backend/tf.js';
import { LinearModule, NormModule, type AdaptableModel, type LinearRole } from '../../src/nn/modules.js';
import { uniformArray } from '../../src/peft/init.js';

type T2 = tf.Tensor2D;

export const HIDDEN = 6;
export const INNER = 4;
export const MLP = 10;
export const CLASSES = 5;

function w(seed: number, name: string, shape: number[]): tf.Variable {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.variable(tf.tensor(uniformArray(n, 0.5, seed, name), shape), true, `${name}#fake${seed}-${Math.random()}`);
}

export class FakeModel implements AdaptableModel {
  readonly headPaths = ['classifier'];
  private readonly lins: LinearModule[];
  private readonly nrms: NormModule[];
  readonly pos: tf.Variable;

  constructor(readonly family: 'llama' | 'vit' = 'llama', seed = 7) {
    const lin = (path: string, role: LinearRole, k: number, d: number, bias: boolean): LinearModule =>
      new LinearModule(path, role, w(seed, `${path}.weight`, [k, d]) as tf.Variable<tf.Rank.R2>, bias ? (w(seed, `${path}.bias`, [d]) as tf.Variable<tf.Rank.R1>) : null);
    const p = 'model.layers.0';
    this.lins = [
      lin(`${p}.self_attn.q_proj`, 'q', HIDDEN, INNER, false),
      lin(`${p}.self_attn.k_proj`, 'k', HIDDEN, INNER, true),
      lin(`${p}.self_attn.v_proj`, 'v', HIDDEN, INNER, false),
      lin(`${p}.self_attn.o_proj`, 'attn_out', INNER, HIDDEN, true),
      lin(`${p}.mlp.up_proj`, 'mlp_in', HIDDEN, MLP, true),
      lin(`${p}.mlp.down_proj`, 'mlp_out', MLP, HIDDEN, false),
      lin('classifier', 'head', HIDDEN, CLASSES, true),
    ];
    const norm = (path: string, bias: boolean): NormModule =>
      new NormModule(path, tf.variable(tf.add(tf.ones([HIDDEN]), tf.tensor1d(uniformArray(HIDDEN, 0.1, seed, path))), true, `${path}#${Math.random()}`) as tf.Variable<tf.Rank.R1>,
        bias ? (w(seed, `${path}.bias`, [HIDDEN]) as tf.Variable<tf.Rank.R1>) : null);
    this.nrms = [norm(`${p}.input_layernorm`, true), norm(`${p}.post_attention_layernorm`, false), norm('model.norm', true)];
    this.pos = w(seed, 'model.pos_embed', [1, HIDDEN]);
  }

  linears(): readonly LinearModule[] {
    return this.lins;
  }
  norms(): readonly NormModule[] {
    return this.nrms;
  }
  linear(short: string): LinearModule {
    return this.lins.find((l) => l.path.endsWith(short))!;
  }

  parameters(): ReadonlyMap<string, tf.Variable> {
    const m = new Map<string, tf.Variable>([['model.pos_embed', this.pos]]);
    for (const l of this.lins) {
      m.set(`${l.path}.weight`, l.weight);
      if (l.bias) m.set(`${l.path}.bias`, l.bias);
    }
    for (const n of this.nrms) {
      m.set(`${n.path}.weight`, n.weight);
      if (n.bias) m.set(`${n.path}.bias`, n.bias);
    }
    return m;
  }

  get totalParams(): number {
    return [...this.parameters().values()].reduce((a, v) => a + v.size, 0);
  }

  private norm(i: number, x: T2): T2 {
    const n = this.nrms[i]!;
    const y = tf.mul(x, n.weight) as T2; // an affine "norm" keeps the test maths simple
    return n.bias ? tf.add(y, n.bias) : y;
  }

  /** x [N, HIDDEN] -> logits [N, CLASSES]. */
  forward(x: T2): T2 {
    const [q, k, v, o, up, down, head] = this.lins as [LinearModule, LinearModule, LinearModule, LinearModule, LinearModule, LinearModule, LinearModule];
    const h = tf.add(x, this.pos) as T2;
    const a = this.norm(0, h);
    const mix = tf.add(tf.mul(q.forward(a), tf.tanh(k.forward(a))), v.forward(a)) as T2; // [N, INNER]
    const h2 = tf.add(h, o.forward(mix)) as T2;
    const m = tf.tanh(up.forward(this.norm(1, h2))) as T2; // [N, MLP]
    const h3 = tf.add(h2, down.forward(m)) as T2;
    return head.forward(this.norm(2, h3));
  }

  dispose(): void {
    for (const v of this.parameters().values()) v.dispose();
  }
}

export function input(n: number, seed = 3, k = HIDDEN): T2 {
  return tf.tensor2d(uniformArray(n * k, 1, seed, 'input'), [n, k]);
}

export function maxRelErr(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / Math.max(1e-12, tf.max(tf.abs(b)).dataSync()[0]!));
}

export function maxAbs(a: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0]!);
}
