// Where each point's label goes in a scatter of bubbles: beside its bubble when there is room,
// further out with a leader line when there is not, never over another label, over another bubble
// only when nothing else is free. Hand-written: vega-lite has no label placement (vega's `label`
// transform is not reachable from a vega-lite spec and leaves out what does not fit), and a label
// left out is a method missing from the plot.
import { overlaps, textWidth } from './plot-render.js';

export interface LabelPoint {
  /** Centre and radius of the bubble, in pixels of the plot area (y down). */
  cx: number;
  cy: number;
  r: number;
  text: string;
}

/**
 * A placed label: its box in pixels of the plot area, and how to anchor its text: a label right of
 * its bubble starts at the box's left edge (`align` left), one on the left ends at its right edge,
 * others are centred. So the text hugs the bubble however much narrower it renders than the
 * estimate its box was made with.
 */
export interface PlacedLabel {
  x: number;
  y: number;
  align: 'left' | 'center' | 'right';
  box: { x1: number; y1: number; x2: number; y2: number };
}

const GAP = 2;
/** Directions tried, preferred first: above, below, right, left, then the diagonals and between. */
const ANGLES = [-90, 90, 0, 180, -45, -135, 45, 135, -22.5, -157.5, 22.5, 157.5, -67.5, -112.5, 67.5, 112.5].map((d) => (d * Math.PI) / 180);

function boxAt(x: number, y: number, w: number, h: number): PlacedLabel['box'] {
  return { x1: x - w / 2, y1: y - h / 2, x2: x + w / 2, y2: y + h / 2 };
}

/** Does the box cut the circle? */
function cuts(b: PlacedLabel['box'], p: LabelPoint): boolean {
  const nx = Math.max(b.x1, Math.min(p.cx, b.x2));
  const ny = Math.max(b.y1, Math.min(p.cy, b.y2));
  return (nx - p.cx) ** 2 + (ny - p.cy) ** 2 < p.r ** 2;
}

/**
 * Labels for `points` in a `width` × `height` plot. Crowded points are placed first (they have the
 * fewest free spots); each label takes the free candidate nearest its bubble, rings further out
 * after the ones beside it.
 */
export function placeLabels(points: readonly LabelPoint[], o: { width: number; height: number; fontSize: number }): PlacedLabel[] {
  const h = o.fontSize * 1.25;
  const sizes = points.map((p) => ({ w: textWidth(p.text, o.fontSize) + 2, h }));
  const crowd = points.map((p) => points.filter((q) => Math.hypot(q.cx - p.cx, q.cy - p.cy) < 80).length);
  const order = points.map((_, i) => i).sort((a, b) => (crowd[b] as number) - (crowd[a] as number) || a - b);
  const placed: (PlacedLabel | null)[] = points.map(() => null);
  for (const i of order) {
    const p = points[i] as LabelPoint;
    const { w } = sizes[i] as { w: number };
    let best: { cost: number; label: PlacedLabel } | null = null;
    for (let ring = 0; ring <= 12 && !(best && best.cost < 1000); ring++) {
      const extra = ring * 12;
      for (const [k, a] of ANGLES.entries()) {
        const cos = Math.cos(a);
        const sin = Math.sin(a);
        // From the centre to the box's edge along the direction, so the box just clears the bubble.
        const half = Math.min(Math.abs(cos) > 1e-9 ? w / 2 / Math.abs(cos) : Infinity, Math.abs(sin) > 1e-9 ? h / 2 / Math.abs(sin) : Infinity);
        const d = p.r + GAP + half + extra;
        const x = p.cx + d * cos;
        const y = p.cy + d * sin;
        const box = boxAt(x, y, w, h);
        if (box.x1 < 0 || box.y1 < 0 || box.x2 > o.width || box.y2 > o.height) continue;
        if (placed.some((q) => q && overlaps(q.box, box))) continue;
        const covered = points.filter((q, j) => j !== i && cuts(box, q)).length;
        const cost = covered * 1000 + extra + k * 0.5;
        const align = cos > 0.3 ? 'left' : cos < -0.3 ? 'right' : 'center';
        if (!best || cost < best.cost) best = { cost, label: { x: align === 'left' ? box.x1 : align === 'right' ? box.x2 : x, y, align, box } };
      }
    }
    // Nowhere free inside the plot: right of the bubble, over whatever is there (never seen on the committed plots).
    placed[i] = best?.label ?? { x: p.cx + p.r, y: p.cy, align: 'left', box: boxAt(p.cx + p.r + w / 2, p.cy, w, h) };
  }
  return placed as PlacedLabel[];
}
