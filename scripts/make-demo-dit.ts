// `node --import tsx scripts/make-demo-dit.ts`: builds the tiny-dit-demo's base model,
// deterministically, from nothing — as DiT-XL/2 is pre-trained on ImageNet before the paper
// fine-tunes it on Food-101:
//  1. 2,000 latent blobs of another task of the same kind (scripts/make-demo-latents.ts variant 1:
//     wider, all-positive blobs on a smaller ring), prepared to Arrow in a temporary directory;
//  2. the tiny-dit preset (seeded random weights, adaLN-Zero) trained whole on them with the DDPM
//     objective, through onelora's own trainer engine and diffusion task;
//  3. saved in the facebookresearch layout (saveDit) in models/demo-dit/. Fine-tuning it on the
//     demo's blobs then starts from a model that denoises, with non-zero modulation layers, as a
//     real DiT checkpoint has (a zero adaLN layer would give DoRA, whose magnitude starts at its
//     column norms, nothing to scale).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend, tf } from '../src/backend/select.js';
import { writeSafetensors } from '../src/checkpoint/safetensors.js';
import { repoRoot } from '../src/config/index.js';
import { Dataset } from '../src/data/arrow-file.js';
import { prepare } from '../src/data/prepare.js';
import { childLog } from '../src/log.js';
import { saveDit } from '../src/models/dit-load.js';
import type { DitModel } from '../src/models/dit.js';
import { loadModel } from '../src/models/registry.js';
import { TrainEngine } from '../src/train/engine.js';
import { pretrain } from './demo/pretrain.js';
import { DiffusionTask } from '../src/train/tasks/diffusion.js';
import { CLASSES, LATENT_SHAPE, demoLatents } from './make-demo-latents.js';

const log = childLog('make-demo-dit');
const SEED = 8765;
const STEPS = Number(process.env.DEMO_DIT_STEPS ?? 800);
const BATCH = 32;

async function main(): Promise<void> {
  await initBackend(process.env.ONELORA_BACKEND ?? 'wasm');
  const out = path.join(repoRoot(), 'models', 'demo-dit');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-demo-dit-'));
  try {
    const { latents, labels } = demoLatents(200, SEED, 1);
    const file = path.join(work, 'blobs.safetensors');
    writeSafetensors(file, {
      latents: { dtype: 'F32', shape: [labels.length, ...LATENT_SHAPE], data: latents },
      labels: { dtype: 'I32', shape: [labels.length], data: labels },
    }, { num_classes: String(CLASSES) });
    await prepare({ dataset: 'latents', input: file, out: path.join(work, 'arrow'), valFraction: 0.1, seed: SEED });
    const train = Dataset.open(path.join(work, 'arrow', 'train.arrow'));
    const val = Dataset.open(path.join(work, 'arrow', 'validation.arrow'));
    const loaded = await loadModel('tiny-dit', { numLabels: CLASSES, seed: SEED });
    if (loaded.family !== 'dit') throw new Error('tiny-dit is not a DiT');
    const model = loaded.model as DitModel;
    for (const l of model.linears()) {
      l.trainWeight = true;
      l.trainBias = l.bias !== null;
    }
    const task = new DiffusionTask({ timesteps: 1000, beta_schedule: 'linear', class_dropout: 0.1 });
    const engine = new TrainEngine(model, task, new Map(model.parameters()), {
      schedule: { name: 'cosine', baseLr: 1e-3, warmupSteps: 50, totalSteps: STEPS, minLrRatio: 0.05 },
      betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, gradClip: 1.0, noDecay: () => true,
    });
    await pretrain(engine, train, { steps: STEPS, batch: BATCH, seed: SEED, log, logEvery: 100, units: (rows) => task.countUnits(rows) });
    const ids = Array.from({ length: val.numRows }, (_, i) => i);
    const ev = await task.evaluate(model, [{ rows: val.rows(ids), ctx: { seed: SEED, epoch: 0, sampleIds: ids, training: false } }]);
    log.info(ev, 'held-out latents of the pre-training task');
    const demo = Dataset.open(path.join(repoRoot(), 'data', 'demo', 'latents-arrow', 'validation.arrow'));
    const demoIds = Array.from({ length: demo.numRows }, (_, i) => i);
    log.info(await task.evaluate(model, [{ rows: demo.rows(demoIds), ctx: { seed: 0, epoch: 0, sampleIds: demoIds, training: false } }]), 'the demo\'s validation latents (the fine-tuning task), before fine-tuning');
    demo.close();
    const tmp = `${out}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    await saveDit(model, tmp);
    fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    log.info({ out, params: [...model.parameters().values()].reduce((n, v) => n + v.size, 0), tensors: tf.memory().numTensors }, 'demo DiT written');
    train.close();
    val.close();
    model.dispose();
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
