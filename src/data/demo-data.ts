// The embedded demo data (so the default job needs no download), generated deterministically:
//  - MetaMath-format arithmetic word problems: one- and two-step addition, subtraction and
//    multiplication of small numbers over varied templates; responses end "The answer is: N" as
//    MetaMathQA's do;
//  - a 10-class image set of procedurally drawn 32×32 shapes in random colours, positions and
//    sizes with pixel noise, written as a CIFAR-10 binary archive (record = label byte + planar RGB).
import { Rng } from '../nn/rng.js';

export interface DemoRow {
  query: string;
  response: string;
  type: string;
  original_question: string;
}

const NAMES = ['Ava', 'Ben', 'Chloe', 'Diego', 'Emma', 'Farid', 'Grace', 'Hugo', 'Iris', 'Jamal', 'Kira', 'Liam', 'Mia', 'Noah', 'Olga', 'Priya'];
const ITEMS = ['apples', 'marbles', 'stickers', 'pencils', 'cookies', 'books', 'shells', 'cards'];
const CONTAINERS = ['boxes', 'bags', 'packs', 'baskets', 'jars'];

type Template = (r: Rng) => { q: string; steps: string[]; answer: number; type: string };

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.int(xs.length)]!;
const num = (r: Rng, lo: number, hi: number): number => lo + r.int(hi - lo + 1);

const TEMPLATES: Template[] = [
  (r) => {
    const [n, it, a, b] = [pick(r, NAMES), pick(r, ITEMS), num(r, 2, 60), num(r, 2, 40)];
    return { q: `${n} has ${a} ${it}. ${n} gets ${b} more ${it}. How many ${it} does ${n} have now?`, steps: [`${n} has ${a} + ${b} = ${a + b} ${it}.`], answer: a + b, type: 'add' };
  },
  (r) => {
    const [n, it, a] = [pick(r, NAMES), pick(r, ITEMS), num(r, 10, 90)];
    const b = num(r, 1, a - 1);
    return { q: `There were ${a} ${it} on the table. ${n} took ${b} of them. How many ${it} are left on the table?`, steps: [`${a} - ${b} = ${a - b} ${it} are left.`], answer: a - b, type: 'sub' };
  },
  (r) => {
    const [n, it, c, k, per] = [pick(r, NAMES), pick(r, ITEMS), pick(r, CONTAINERS), num(r, 2, 12), num(r, 2, 12)];
    return { q: `${n} buys ${k} ${c} of ${it}. Each of the ${c} holds ${per} ${it}. How many ${it} did ${n} buy?`, steps: [`${n} bought ${k} * ${per} = ${k * per} ${it}.`], answer: k * per, type: 'mul' };
  },
  (r) => {
    const [n, price, k] = [pick(r, NAMES), num(r, 2, 15), num(r, 2, 9)];
    const paid = price * k + num(r, 0, 20);
    const cost = price * k;
    return {
      q: `${n} buys ${k} notebooks that cost $${price} each and pays with $${paid}. How much change does ${n} get back, in dollars?`,
      steps: [`The notebooks cost ${k} * ${price} = $${cost}.`, `The change is ${paid} - ${cost} = $${paid - cost}.`],
      answer: paid - cost, type: 'money',
    };
  },
  (r) => {
    const [speed, h1, h2] = [num(r, 20, 90), num(r, 1, 5), num(r, 1, 4)];
    const d1 = speed * h1;
    const d2 = speed * h2;
    return {
      q: `A train travels at ${speed} miles per hour. It runs for ${h1} hours, stops at a station, then runs for ${h2} more hours at the same speed. How many miles does it travel in total?`,
      steps: [`First it travels ${speed} * ${h1} = ${d1} miles.`, `Then it travels ${speed} * ${h2} = ${d2} miles.`, `In total it travels ${d1} + ${d2} = ${d1 + d2} miles.`],
      answer: d1 + d2, type: 'train',
    };
  },
  (r) => {
    const [n, m, it, a, g, e] = [pick(r, NAMES), pick(r, NAMES), pick(r, ITEMS), num(r, 20, 80), num(r, 1, 15), num(r, 1, 30)];
    return {
      q: `${n} had ${a} ${it}. ${n} gave ${g} to ${m} and then found ${e} more. How many ${it} does ${n} have?`,
      steps: [`After giving some away, ${n} has ${a} - ${g} = ${a - g} ${it}.`, `After finding more, ${n} has ${a - g} + ${e} = ${a - g + e} ${it}.`],
      answer: a - g + e, type: 'add-sub',
    };
  },
  (r) => {
    const [n, a, pa, b, pb] = [pick(r, NAMES), num(r, 2, 9), num(r, 1, 12), num(r, 2, 9), num(r, 1, 12)];
    return {
      q: `At the market ${n} buys ${a} melons at $${pa} each and ${b} loaves of bread at $${pb} each. How much does ${n} spend?`,
      steps: [`The melons cost ${a} * ${pa} = $${a * pa}.`, `The bread costs ${b} * ${pb} = $${b * pb}.`, `${n} spends ${a * pa} + ${b * pb} = $${a * pa + b * pb}.`],
      answer: a * pa + b * pb, type: 'money',
    };
  },
  (r) => {
    const [n, weeks, perDay] = [pick(r, NAMES), num(r, 2, 6), num(r, 2, 9)];
    return {
      q: `${n} reads ${perDay} pages every day. How many pages does ${n} read in ${weeks} weeks?`,
      steps: [`${weeks} weeks have ${weeks} * 7 = ${weeks * 7} days.`, `${n} reads ${weeks * 7} * ${perDay} = ${weeks * 7 * perDay} pages.`],
      answer: weeks * 7 * perDay, type: 'mul',
    };
  },
];

/** `count` MetaMath-format rows, a pure function of (count, seed). */
export function demoMetamath(count: number, seed: number): DemoRow[] {
  const r = Rng.from(seed, 0xde30);
  return Array.from({ length: count }, () => {
    const t = pick(r, TEMPLATES)(r);
    return { query: t.q, response: `${t.steps.join(' ')}\nThe answer is: ${t.answer}`, type: `Demo_${t.type}`, original_question: t.q };
  });
}

export const DEMO_SHAPES = ['circle', 'square', 'triangle', 'cross', 'ring', 'hstripes', 'vstripes', 'diagonal', 'dots', 'frame'];

type Inside = (x: number, y: number, cx: number, cy: number, s: number) => boolean;

const SHAPES: Inside[] = [
  (x, y, cx, cy, s) => (x - cx) ** 2 + (y - cy) ** 2 <= s * s,
  (x, y, cx, cy, s) => Math.abs(x - cx) <= s && Math.abs(y - cy) <= s,
  (x, y, cx, cy, s) => y >= cy - s && y <= cy + s && Math.abs(x - cx) <= (y - (cy - s)) / 2,
  (x, y, cx, cy, s) => (Math.abs(x - cx) <= s / 3 && Math.abs(y - cy) <= s) || (Math.abs(y - cy) <= s / 3 && Math.abs(x - cx) <= s),
  (x, y, cx, cy, s) => { const d = Math.hypot(x - cx, y - cy); return d <= s && d >= s * 0.55; },
  (x, y, cx, cy, s) => Math.abs(x - cx) <= s && Math.abs(y - cy) <= s && Math.floor(y / 3) % 2 === 0,
  (x, y, cx, cy, s) => Math.abs(x - cx) <= s && Math.abs(y - cy) <= s && Math.floor(x / 3) % 2 === 0,
  (x, y, cx, cy, s) => Math.abs(x - cx) <= s && Math.abs(y - cy) <= s && Math.abs((x - cx) - (y - cy)) <= 2,
  (x, y, cx, cy, s) => Math.abs(x - cx) <= s && Math.abs(y - cy) <= s && x % 4 === 1 && y % 4 === 1,
  (x, y, cx, cy, s) => Math.abs(x - cx) <= s && Math.abs(y - cy) <= s && (Math.abs(x - cx) >= s - 2 || Math.abs(y - cy) >= s - 2),
];

/** One 32×32 image of `shape` as a CIFAR record (label byte + planar R, G, B). */
function drawRecord(r: Rng, shape: number): Uint8Array {
  const rec = new Uint8Array(1 + 3072);
  rec[0] = shape;
  const fg = [num(r, 60, 255), num(r, 60, 255), num(r, 60, 255)];
  const bg = fg.map((c) => Math.max(0, c - 60 - r.int(60)));
  const s = num(r, 7, 13);
  const cx = num(r, s, 31 - s);
  const cy = num(r, s, 31 - s);
  const inside = SHAPES[shape]!;
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      const col = inside(x, y, cx, cy, s) ? fg : bg;
      for (let c = 0; c < 3; c++) rec[1 + c * 1024 + y * 32 + x] = Math.min(255, Math.max(0, col[c]! + r.int(31) - 15));
    }
  }
  return rec;
}

/** `perClass` images of each of the 10 shapes, classes interleaved, as CIFAR-10 binary bytes. */
export function demoShapes(perClass: number, seed: number): Uint8Array {
  const r = Rng.from(seed, 0x5a9e);
  const out = new Uint8Array(perClass * SHAPES.length * 3073);
  let at = 0;
  for (let i = 0; i < perClass; i++) {
    for (let k = 0; k < SHAPES.length; k++) {
      out.set(drawRecord(r, k), at);
      at += 3073;
    }
  }
  return out;
}
