// Monocular depth metrics on the usual protocol (Eigen et al. 2014; as BTS and ZoeDepth compute them),
// per image over its valid pixels, then averaged over images:
//   AbsRel = mean |d − d*| / d*,  RMSE = √mean (d − d*)²,  log10 = mean |log10 d − log10 d*|,
//   δ_k = share of pixels with max(d/d*, d*/d) < 1.25^k (k = 1, 2, 3).
// Valid pixels: measured (the dataset's mask), inside the depth caps of the dataset (NYU 1e-3–10 m,
// KITTI 1e-3–80 m, DIODE outdoor 1e-3–300 m), and inside the evaluation crop (Eigen's for NYU,
// Garg's for KITTI, none for DIODE), defined on the full-size frames and scaled to the stored size.
// Predictions are clipped to the caps; a relative model's output is median-scaled to the ground truth
// first (its scale is unknown), a metric model's is used as is.

export interface DepthProtocol {
  readonly minDepth: number;
  readonly maxDepth: number;
  /** [top, bottom, left, right] as fractions of the frame; null: the whole frame. */
  readonly crop: readonly [number, number, number, number] | null;
}

// Eigen crop: rows 45..471, cols 41..601 of 480 × 640; Garg crop: the fractions of BTS's eval code.
export const PROTOCOLS: Readonly<Record<string, DepthProtocol>> = {
  nyu: { minDepth: 1e-3, maxDepth: 10, crop: [45 / 480, 471 / 480, 41 / 640, 601 / 640] },
  kitti: { minDepth: 1e-3, maxDepth: 80, crop: [0.40810811, 0.99189189, 0.03594771, 0.96405229] },
  diode: { minDepth: 1e-3, maxDepth: 300, crop: null },
};

export const METRIC_NAMES = ['abs_rel', 'rmse', 'log10', 'd1', 'd2', 'd3'] as const;
export type DepthMetrics = Record<(typeof METRIC_NAMES)[number], number>;

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Metrics of one image (h × w maps); null when no pixel is valid. */
export function imageMetrics(pred: ArrayLike<number>, gt: ArrayLike<number>, valid: ArrayLike<number>, h: number, w: number, p: DepthProtocol, relative: boolean): DepthMetrics | null {
  const [t, b, l, r] = p.crop ? [Math.floor(p.crop[0] * h), Math.floor(p.crop[1] * h), Math.floor(p.crop[2] * w), Math.floor(p.crop[3] * w)] : [0, h, 0, w];
  const ps: number[] = [];
  const gs: number[] = [];
  for (let y = t; y < b; y++) {
    for (let x = l; x < r; x++) {
      const i = y * w + x;
      const g = gt[i]!;
      if (!valid[i] || !(g > p.minDepth && g < p.maxDepth)) continue;
      ps.push(pred[i]!);
      gs.push(g);
    }
  }
  if (gs.length === 0) return null;
  const scale = relative ? median(gs) / Math.max(median(ps), 1e-12) : 1;
  let absRel = 0;
  let sq = 0;
  let lg = 0;
  const d = [0, 0, 0];
  for (let i = 0; i < gs.length; i++) {
    const q = Math.min(Math.max(ps[i]! * scale, p.minDepth), p.maxDepth);
    const g = gs[i]!;
    absRel += Math.abs(q - g) / g;
    sq += (q - g) ** 2;
    lg += Math.abs(Math.log10(q) - Math.log10(g));
    const ratio = Math.max(q / g, g / q);
    for (let k = 0; k < 3; k++) if (ratio < 1.25 ** (k + 1)) d[k]!++;
  }
  const n = gs.length;
  return { abs_rel: absRel / n, rmse: Math.sqrt(sq / n), log10: lg / n, d1: d[0]! / n, d2: d[1]! / n, d3: d[2]! / n };
}

/** Running mean of per-image metrics. */
export class DepthMetricSum {
  private readonly sum: DepthMetrics = { abs_rel: 0, rmse: 0, log10: 0, d1: 0, d2: 0, d3: 0 };
  images = 0;

  add(m: DepthMetrics | null): void {
    if (!m) return;
    for (const k of METRIC_NAMES) this.sum[k] += m[k];
    this.images++;
  }

  mean(): DepthMetrics {
    const out = { ...this.sum };
    for (const k of METRIC_NAMES) out[k] = this.images ? out[k] / this.images : NaN;
    return out;
  }
}
