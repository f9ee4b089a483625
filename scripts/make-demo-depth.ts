// `node --import tsx scripts/make-demo-depth.ts`: builds the tiny-depth-demo's base model and data,
// deterministically, from nothing — as the paper starts from a Depth Anything pre-trained on one
// domain and fine-tunes it to another:
//  1. 480 rendered indoor scenes (src/data/depth-demo.ts; NYU-like, exact depth), 56 × 56;
//  2. the tiny-depth config (metric head, max_depth 80, transformers' key layout) with seeded
//     random weights, trained whole on them through onelora's TrainEngine and depth task (SiLog,
//     flip), then saved as F16 safetensors in models/demo-depth/;
//  3. the outdoor domain the demo fine-tunes to (KITTI-like: ground plane, sky without depth,
//     distant blocks), 96 training and 24 validation scenes, written to data/demo/depth-outdoor/,
//     and one 84 × 84 outdoor scene as data/demo/depth-scene.png for `onelora depth` (docs/depth.md).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { initBackend } from '../src/backend/select.js';
import { repoRoot } from '../src/config/index.js';
import { ArrowFileWriter, Dataset } from '../src/data/arrow-file.js';
import { depthBatch, depthSchema } from '../src/data/arrow.js';
import { demoScenes } from '../src/data/depth-demo.js';
import { childLog } from '../src/log.js';
import { DEPTH_PRESETS } from '../src/models/depth-anything-config.js';
import { randomDepth, saveDepth } from '../src/models/depth-anything-load.js';
import { TrainEngine } from '../src/train/engine.js';
import { DepthTask } from '../src/train/tasks/depth.js';
import { pretrain } from './demo/pretrain.js';

const log = childLog('make-demo-depth');
const SEED = 1616;
const SIZE = 56;
const STEPS = Number(process.env.DEMO_DEPTH_STEPS ?? 300);
const BATCH = 8;

async function writeScenes(file: string, kind: 'indoor' | 'outdoor', n: number, seed: number): Promise<void> {
  const w = new ArrowFileWriter(file, depthSchema(SIZE, SIZE, kind === 'indoor' ? 'nyu' : 'kitti'));
  w.write(depthBatch(w.schema, demoScenes(kind, n, SIZE, seed), n));
  await w.close();
}

/** A PNG of one outdoor scene at another size than the data (84 × 84: a 6 × 6 patch grid at --input-size 84, resized from 56). */
async function writeScenePng(file: string): Promise<void> {
  const s = demoScenes('outdoor', 1, 84, SEED + 4);
  await sharp(Buffer.from(s.image), { raw: { width: 84, height: 84, channels: 3 } }).png().toFile(file);
}

async function main(): Promise<void> {
  await initBackend(process.env.ONELORA_BACKEND ?? 'wasm');
  const root = repoRoot();
  const data = path.join(root, 'data', 'demo', 'depth-outdoor');
  fs.mkdirSync(data, { recursive: true });
  await writeScenes(path.join(data, 'train.arrow'), 'outdoor', 96, SEED + 2);
  await writeScenes(path.join(data, 'validation.arrow'), 'outdoor', 24, SEED + 3);
  await writeScenePng(path.join(root, 'data', 'demo', 'depth-scene.png'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-demo-depth-'));
  try {
    await writeScenes(path.join(work, 'indoor.arrow'), 'indoor', 480, SEED);
    await writeScenes(path.join(work, 'indoor-val.arrow'), 'indoor', 24, SEED + 1);
    const train = Dataset.open(path.join(work, 'indoor.arrow'));
    const val = Dataset.open(path.join(work, 'indoor-val.arrow'));
    const model = randomDepth({ ...DEPTH_PRESETS['tiny-depth']!, keyLayout: 'hf', posInterp: 'size', maxDepth: 80 }, SEED);
    for (const l of model.linears()) {
      l.trainWeight = true;
      l.trainBias = true;
    }
    for (const v of model.parameters().values()) v.trainable = true;
    const task = new DepthTask({ input_size: SIZE, random_crop: false, hflip: true, variance_focus: 0.85 }, train.info);
    const engine = new TrainEngine(model, task, new Map(model.parameters()), {
      schedule: { name: 'cosine', baseLr: 2e-3, warmupSteps: 20, totalSteps: STEPS, minLrRatio: 0.05 },
      betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, gradClip: 1.0, noDecay: (k) => /bias|norm|lambda/.test(k),
    });
    await pretrain(engine, train, { steps: STEPS, batch: BATCH, seed: SEED, log, logEvery: 25, units: () => BATCH });
    for (const v of model.parameters().values()) v.trainable = false;
    const ids = Array.from({ length: val.numRows }, (_, i) => i);
    log.info(await task.evaluate(model, [{ rows: val.rows(ids), ctx: { seed: SEED, epoch: 0, sampleIds: ids, training: false } }]), 'held-out indoor scenes');
    const out = path.join(root, 'models', 'demo-depth');
    fs.rmSync(out, { recursive: true, force: true });
    await saveDepth(model, out, { dtype: 'F16' });
    log.info({ out }, 'demo Depth Anything written');
    train.close();
    val.close();
    model.dispose();
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
