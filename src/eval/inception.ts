// The FID Inception network (Szegedy et al., "Rethinking the Inception Architecture", 2016, in the
// TF 2015-12-05 graph that FID is defined with), as pytorch-fid builds it (`fid_inception_v3`:
// torchvision's Inception3 with FIDInceptionA/C/E blocks) and reads it (`InceptionV3` with output
// block 3): images in [0, 1] resized to 299 × 299 bilinearly (align_corners=False), scaled to
// [-1, 1], the blocks up to Mixed_7c, and the global average pool: 2048 numbers per image.
// The FID blocks differ from torchvision's in their pools: average pools do not count the padding
// (as TF's), and the last block's pool branch takes a max. Checked against torch in
// test/eval/inception.test.ts (scripts/make-inception-fixtures.py).
//
// Every conv is torchvision's BasicConv2d (conv without bias, BatchNorm eps 0.001, ReLU); the
// BatchNorm is folded into the conv at load time. Weights come from a safetensors (or torch.save)
// state dict with pytorch-fid's names (scripts/convert-fid-inception.py converts its `.pth`).
import { tf } from '../backend/tf.js';
import { checkTensorSet } from '../checkpoint/tensor-set.js';
import { openSafetensorsDir } from '../checkpoint/safetensors.js';
import { UserError } from '../errors.js';
import { conv2d, convWeightFromTorch } from '../nn/conv.js';

type T4 = tf.Tensor4D;
type Pair = readonly [number, number];

interface ConvSpec {
  readonly name: string;
  readonly cin: number;
  readonly cout: number;
  readonly k: Pair;
  readonly stride: number;
  readonly pad: Pair;
}

const sq = (n: number): Pair => [n, n];
const spec = (name: string, cin: number, cout: number, k: number | Pair, o: { stride?: number; pad?: number | Pair } = {}): ConvSpec => ({
  name, cin, cout, k: typeof k === 'number' ? sq(k) : k, stride: o.stride ?? 1, pad: typeof o.pad === 'number' ? sq(o.pad) : o.pad ?? sq(0),
});

/** A block: named convs and how the forward combines them. */
type Block = { readonly kind: 'A' | 'B' | 'C' | 'D' | 'E1' | 'E2'; readonly name: string; readonly convs: ConvSpec[] };

function blockA(name: string, cin: number, pool: number): Block {
  const c = (n: string, i: number, o: number, k: number, pad = 0): ConvSpec => spec(`${name}.${n}`, i, o, k, { pad });
  return { kind: 'A', name, convs: [c('branch1x1', cin, 64, 1), c('branch5x5_1', cin, 48, 1), c('branch5x5_2', 48, 64, 5, 2), c('branch3x3dbl_1', cin, 64, 1), c('branch3x3dbl_2', 64, 96, 3, 1), c('branch3x3dbl_3', 96, 96, 3, 1), c('branch_pool', cin, pool, 1)] };
}

function blockC(name: string, c7: number): Block {
  const r: Pair = [1, 7];
  const col: Pair = [7, 1];
  const c = (n: string, i: number, o: number, k: number | Pair, pad: number | Pair = 0): ConvSpec => spec(`${name}.${n}`, i, o, k, { pad });
  return {
    kind: 'C', name,
    convs: [
      c('branch1x1', 768, 192, 1), c('branch7x7_1', 768, c7, 1), c('branch7x7_2', c7, c7, r, [0, 3]), c('branch7x7_3', c7, 192, col, [3, 0]),
      c('branch7x7dbl_1', 768, c7, 1), c('branch7x7dbl_2', c7, c7, col, [3, 0]), c('branch7x7dbl_3', c7, c7, r, [0, 3]),
      c('branch7x7dbl_4', c7, c7, col, [3, 0]), c('branch7x7dbl_5', c7, 192, r, [0, 3]), c('branch_pool', 768, 192, 1),
    ],
  };
}

function blockE(name: string, cin: number, kind: 'E1' | 'E2'): Block {
  const c = (n: string, i: number, o: number, k: number | Pair, pad: number | Pair = 0): ConvSpec => spec(`${name}.${n}`, i, o, k, { pad });
  return {
    kind, name,
    convs: [
      c('branch1x1', cin, 320, 1), c('branch3x3_1', cin, 384, 1), c('branch3x3_2a', 384, 384, [1, 3], [0, 1]), c('branch3x3_2b', 384, 384, [3, 1], [1, 0]),
      c('branch3x3dbl_1', cin, 448, 1), c('branch3x3dbl_2', 448, 384, 3, 1), c('branch3x3dbl_3a', 384, 384, [1, 3], [0, 1]),
      c('branch3x3dbl_3b', 384, 384, [3, 1], [1, 0]), c('branch_pool', cin, 192, 1),
    ],
  };
}

const STEM: ConvSpec[] = [
  spec('Conv2d_1a_3x3', 3, 32, 3, { stride: 2 }), spec('Conv2d_2a_3x3', 32, 32, 3), spec('Conv2d_2b_3x3', 32, 64, 3, { pad: 1 }),
  spec('Conv2d_3b_1x1', 64, 80, 1), spec('Conv2d_4a_3x3', 80, 192, 3),
];

const BLOCKS: Block[] = [
  blockA('Mixed_5b', 192, 32), blockA('Mixed_5c', 256, 64), blockA('Mixed_5d', 288, 64),
  { kind: 'B', name: 'Mixed_6a', convs: [spec('Mixed_6a.branch3x3', 288, 384, 3, { stride: 2 }), spec('Mixed_6a.branch3x3dbl_1', 288, 64, 1), spec('Mixed_6a.branch3x3dbl_2', 64, 96, 3, { pad: 1 }), spec('Mixed_6a.branch3x3dbl_3', 96, 96, 3, { stride: 2 })] },
  blockC('Mixed_6b', 128), blockC('Mixed_6c', 160), blockC('Mixed_6d', 160), blockC('Mixed_6e', 192),
  {
    kind: 'D', name: 'Mixed_7a',
    convs: [
      spec('Mixed_7a.branch3x3_1', 768, 192, 1), spec('Mixed_7a.branch3x3_2', 192, 320, 3, { stride: 2 }), spec('Mixed_7a.branch7x7x3_1', 768, 192, 1),
      spec('Mixed_7a.branch7x7x3_2', 192, 192, [1, 7], { pad: [0, 3] }), spec('Mixed_7a.branch7x7x3_3', 192, 192, [7, 1], { pad: [3, 0] }), spec('Mixed_7a.branch7x7x3_4', 192, 192, 3, { stride: 2 }),
    ],
  },
  blockE('Mixed_7b', 1280, 'E1'), blockE('Mixed_7c', 2048, 'E2'),
];

const ALL_CONVS: ConvSpec[] = [...STEM, ...BLOCKS.flatMap((b) => b.convs)];
const BN_EPS = 0.001;

/** The state-dict names and shapes pytorch-fid's FIDInceptionV3 holds (fc and the BN counters ignored on load). */
export function inceptionTensorShapes(): Map<string, readonly number[]> {
  const m = new Map<string, readonly number[]>();
  for (const c of ALL_CONVS) {
    m.set(`${c.name}.conv.weight`, [c.cout, c.cin, c.k[0], c.k[1]]);
    for (const p of ['weight', 'bias', 'running_mean', 'running_var']) m.set(`${c.name}.bn.${p}`, [c.cout]);
  }
  return m;
}

interface FoldedConv {
  readonly spec: ConvSpec;
  readonly w: T4;
  readonly b: tf.Tensor1D;
}

/** 3 × 3 average pool, stride 1, padding 1, not counting the padding (TF's SAME; count_include_pad=False). */
function avgPool3NoPad(x: T4): T4 {
  const [, h, w] = x.shape;
  const count = new Float32Array(h * w);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) count[i * w + j] = (Math.min(i + 1, h - 1) - Math.max(i - 1, 0) + 1) * (Math.min(j + 1, w - 1) - Math.max(j - 1, 0) + 1);
  const sum = tf.mul(tf.avgPool(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]) as T4, 3, 1, 'valid'), 9);
  return tf.div(sum, tf.tensor(count, [1, h, w, 1])) as T4;
}

/** 3 × 3 max pool, stride 1, padding 1 (padding never wins: it is −∞ in torch). */
function maxPool3Same(x: T4): T4 {
  return tf.maxPool(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], -3.4e38) as T4, 3, 1, 'valid');
}

export class FidInception {
  private constructor(private readonly convs: ReadonlyMap<string, FoldedConv>) {}

  /** Loads pytorch-fid's state dict (safetensors, or the torch.save `.pth` itself) strictly. */
  static load(file: string): FidInception {
    const src = openSafetensorsDir(file);
    try {
      checkTensorSet({
        expected: inceptionTensorShapes(), found: src.tensors, source: src.file,
        ignored: (n) => n.endsWith('num_batches_tracked') || n === 'fc.weight' || n === 'fc.bias',
        notes: { unexpected: "not part of pytorch-fid's FID Inception network" },
      });
      const read = (n: string): Float32Array => {
        const t = src.read(n);
        if (!(t.data instanceof Float32Array)) throw new UserError(`${src.file}: tensor '${n}' is ${t.dtype}, expected F32/F16/BF16`);
        return t.data;
      };
      const convs = new Map<string, FoldedConv>();
      for (const c of ALL_CONVS) {
        const w = read(`${c.name}.conv.weight`);
        const [g, beta, mean, v] = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => read(`${c.name}.bn.${p}`)) as [Float32Array, Float32Array, Float32Array, Float32Array];
        // BN(conv(x)) = conv(x)·s + (β − μ·s), s = γ / √(σ² + ε): scale each output filter by s.
        const per = w.length / c.cout;
        const folded = new Float32Array(w.length);
        const bias = new Float32Array(c.cout);
        for (let o = 0; o < c.cout; o++) {
          const s = g[o]! / Math.sqrt(v[o]! + BN_EPS);
          for (let i = 0; i < per; i++) folded[o * per + i] = w[o * per + i]! * s;
          bias[o] = beta[o]! - mean[o]! * s;
        }
        convs.set(c.name, { spec: c, w: tf.keep(convWeightFromTorch(folded, [c.cout, c.cin, c.k[0], c.k[1]])), b: tf.keep(tf.tensor1d(bias)) });
      }
      return new FidInception(convs);
    } finally {
      src.close();
    }
  }

  private conv(name: string, x: T4): T4 {
    const c = this.convs.get(name)!;
    return tf.relu(conv2d(x, c.w, { stride: c.spec.stride, padding: c.spec.pad, bias: c.b }));
  }

  private block(b: Block, x: T4): T4 {
    const n = (s: string): string => `${b.name}.${s}`;
    const seq = (names: string[], t: T4): T4 => names.reduce((acc, s) => this.conv(n(s), acc), t);
    switch (b.kind) {
      case 'A':
        return tf.concat([seq(['branch1x1'], x), seq(['branch5x5_1', 'branch5x5_2'], x), seq(['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'], x), this.conv(n('branch_pool'), avgPool3NoPad(x))], 3);
      case 'B':
        return tf.concat([seq(['branch3x3'], x), seq(['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'], x), tf.maxPool(x, 3, 2, 'valid')], 3);
      case 'C':
        return tf.concat([
          seq(['branch1x1'], x), seq(['branch7x7_1', 'branch7x7_2', 'branch7x7_3'], x),
          seq(['branch7x7dbl_1', 'branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5'], x), this.conv(n('branch_pool'), avgPool3NoPad(x)),
        ], 3);
      case 'D':
        return tf.concat([seq(['branch3x3_1', 'branch3x3_2'], x), seq(['branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3', 'branch7x7x3_4'], x), tf.maxPool(x, 3, 2, 'valid')], 3);
      default: {
        const b3 = this.conv(n('branch3x3_1'), x);
        const bd = seq(['branch3x3dbl_1', 'branch3x3dbl_2'], x);
        const pool = b.kind === 'E1' ? avgPool3NoPad(x) : maxPool3Same(x);
        return tf.concat([
          this.conv(n('branch1x1'), x), this.conv(n('branch3x3_2a'), b3), this.conv(n('branch3x3_2b'), b3),
          this.conv(n('branch3x3dbl_3a'), bd), this.conv(n('branch3x3dbl_3b'), bd), this.conv(n('branch_pool'), pool),
        ], 3);
      }
    }
  }

  /** uint8-valued images [N, H, W, 3] (as floats 0..255) -> pool3 features [N, 2048]. Each stage in its own tidy. */
  features(images: T4): tf.Tensor2D {
    const stages: ((t: T4) => T4)[] = [
      (t) => tf.sub(tf.mul(tf.image.resizeBilinear(tf.div(t, 255) as T4, [299, 299], false, true), 2), 1) as T4, // [0, 1] -> 299² -> [-1, 1]
      (t) => tf.maxPool(this.conv('Conv2d_2b_3x3', this.conv('Conv2d_2a_3x3', this.conv('Conv2d_1a_3x3', t))), 3, 2, 'valid'),
      (t) => tf.maxPool(this.conv('Conv2d_4a_3x3', this.conv('Conv2d_3b_1x1', t)), 3, 2, 'valid'),
      ...BLOCKS.map((b) => (t: T4) => this.block(b, t)),
    ];
    let cur = images;
    for (const s of stages) {
      const next = tf.tidy(() => s(cur));
      if (cur !== images) cur.dispose();
      cur = next;
    }
    const out = tf.tidy(() => tf.mean(cur, [1, 2]) as tf.Tensor2D); // global average pool -> [N, 2048]
    cur.dispose();
    return out;
  }

  dispose(): void {
    for (const c of this.convs.values()) {
      c.w.dispose();
      c.b.dispose();
    }
  }
}
