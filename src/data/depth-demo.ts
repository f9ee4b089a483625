// Procedurally rendered scenes with exact depth, for the tiny depth demo (scripts/make-demo-depth.ts):
// a pinhole camera (focal length = image width) casts one ray per pixel; depth is the z of the
// nearest surface it hits, colour is the surface's colour, a texture and distance shading.
//   indoor:  a box-shaped room (floor, ceiling, side and back walls 3–7 m away) with 1–3
//            fronto-parallel boxes 1–5 m away — NYU-like, 'nyu' protocol (caps 10 m);
//   outdoor: a ground plane 1.5–1.8 m below the camera, sky (no depth: invalid), and 2–5 distant
//            blocks 6–60 m away — KITTI-like, 'kitti' protocol (caps 80 m).
// Deterministic for a seed (mulberry32, src/nn/rng.ts), so the demo data is rebuilt bit for bit.
import { Rng } from '../nn/rng.js';

export interface DepthScene {
  readonly image: Uint8Array;
  readonly depth: Float32Array;
  readonly valid: Uint8Array;
}

type Rgb = [number, number, number];

interface Hit {
  z: number;
  rgb: Rgb;
  tex: number;
}

/** A fronto-parallel rectangle at depth z spanning x0..x1, y0..y1 (metres, camera frame, y up). */
interface Block {
  z: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  rgb: Rgb;
}

const colour = (rng: Rng): Rgb => [rng.uniform(0.2, 0.95), rng.uniform(0.2, 0.95), rng.uniform(0.2, 0.95)];

function blockHit(blocks: readonly Block[], dx: number, dy: number, best: Hit | null): Hit | null {
  let out = best;
  for (const b of blocks) {
    const x = dx * b.z;
    const y = dy * b.z;
    if (x >= b.x0 && x <= b.x1 && y >= b.y0 && y <= b.y1 && (!out || b.z < out.z)) out = { z: b.z, rgb: b.rgb, tex: 0 };
  }
  return out;
}

/** Hit of the ray (dx, dy, 1) with the plane y = h (a floor when h < 0), with a checker texture. */
function planeY(h: number, dx: number, dy: number, rgb: Rgb, scale: number): Hit | null {
  if (dy === 0 || Math.sign(dy) !== Math.sign(h)) return null;
  const z = h / dy;
  const checker = (Math.floor((dx * z) / scale) + Math.floor(z / scale)) & 1;
  return { z, rgb, tex: checker ? 0.12 : -0.12 };
}

function render(size: number, hitAt: (dx: number, dy: number) => Hit | null, sky: Rgb, maxDepth: number, rng: Rng): DepthScene {
  const n = size * size;
  const image = new Uint8Array(n * 3);
  const depth = new Float32Array(n);
  const valid = new Uint8Array(n);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const dx = (px + 0.5 - size / 2) / size;
      const dy = (size / 2 - py - 0.5) / size;
      const hit = hitAt(dx, dy);
      const i = py * size + px;
      let rgb: Rgb = [sky[0] - 0.3 * dy, sky[1] - 0.2 * dy, sky[2]];
      if (hit && hit.z < maxDepth) {
        depth[i] = hit.z;
        valid[i] = 1;
        const shade = 1 / (1 + 0.04 * hit.z) + hit.tex;
        rgb = [hit.rgb[0] * shade, hit.rgb[1] * shade, hit.rgb[2] * shade];
      }
      for (let k = 0; k < 3; k++) image[i * 3 + k] = Math.max(0, Math.min(255, Math.round(255 * rgb[k]! + rng.uniform(-4, 4))));
    }
  }
  return { image, depth, valid };
}

function indoorScene(size: number, rng: Rng): DepthScene {
  const back = rng.uniform(3, 7);
  const half = rng.uniform(1.5, 2.5);
  const floor = -rng.uniform(1.2, 1.6);
  const ceil = rng.uniform(1.0, 1.5);
  const [wallL, wallR, wallB, floorC, ceilC] = [colour(rng), colour(rng), colour(rng), colour(rng), colour(rng)];
  const blocks: Block[] = [];
  const count = 1 + rng.int(3);
  for (let b = 0; b < count; b++) {
    const z = rng.uniform(1, Math.min(5, back - 0.2));
    const w = rng.uniform(0.3, 1.0);
    const x = rng.uniform(-half + w, half - w);
    blocks.push({ z, x0: x - w, x1: x + w, y0: floor, y1: floor + rng.uniform(0.4, 1.6), rgb: colour(rng) });
  }
  return render(size, (dx, dy) => {
    let best: Hit | null = { z: back, rgb: wallB, tex: 0 };
    for (const h of [planeY(floor, dx, dy, floorC, 0.5), planeY(ceil, dx, dy, ceilC, 1)]) if (h && h.z < best!.z) best = h;
    for (const [x, c] of [[-half, wallL], [half, wallR]] as const) {
      if (dx !== 0 && Math.sign(dx) === Math.sign(x)) {
        const z = x / dx;
        if (z < best!.z) best = { z, rgb: c, tex: 0.05 * Math.sin(z * 6) };
      }
    }
    return blockHit(blocks, dx, dy, best);
  }, [0.5, 0.5, 0.5], 10, rng);
}

function outdoorScene(size: number, rng: Rng): DepthScene {
  const ground = -rng.uniform(1.5, 1.8);
  const groundC: Rgb = [rng.uniform(0.25, 0.4), rng.uniform(0.3, 0.5), rng.uniform(0.2, 0.3)];
  const blocks: Block[] = [];
  const count = 2 + rng.int(4);
  for (let b = 0; b < count; b++) {
    const z = rng.uniform(6, 60);
    const w = rng.uniform(1, 6);
    const x = rng.uniform(-0.5, 0.5) * z;
    blocks.push({ z, x0: x - w, x1: x + w, y0: ground, y1: ground + rng.uniform(2, 12), rgb: colour(rng) });
  }
  return render(size, (dx, dy) => blockHit(blocks, dx, dy, planeY(ground, dx, dy, groundC, 2)), [0.45, 0.65, 0.95], 80, rng);
}

/** `n` scenes of one domain, back to back in the depth schema's column order. */
export function demoScenes(kind: 'indoor' | 'outdoor', n: number, size: number, seed: number): { image: Uint8Array; depth: Float32Array; valid: Uint8Array } {
  const rng = new Rng(seed);
  const px = size * size;
  const out = { image: new Uint8Array(n * px * 3), depth: new Float32Array(n * px), valid: new Uint8Array(n * px) };
  for (let i = 0; i < n; i++) {
    const s = kind === 'indoor' ? indoorScene(size, rng) : outdoorScene(size, rng);
    out.image.set(s.image, i * px * 3);
    out.depth.set(s.depth, i * px);
    out.valid.set(s.valid, i * px);
  }
  return out;
}
