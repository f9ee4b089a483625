// `node --import tsx scripts/make-demo-vit.ts`: builds the tiny-vit-demo's base model,
// deterministically, from nothing — as ViT-B/16 in21k is a backbone pre-trained on other images:
//  1. 1,000 shapes images drawn with another seed than the bundled demo set (src/data/demo-data.ts),
//     prepared to Arrow in a temporary directory;
//  2. the tiny-vit preset (seeded random weights) trained whole on them with a temporary classifier,
//     through onelora's own trainer engine and classification task (RandomResizedCrop + flip);
//  3. saved without the classifier (architectures: ViTModel) as F16 safetensors in models/demo-vit/,
//     so the demo, like the paper's CIFAR runs, creates a new classifier and adapts the backbone.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend, tf } from '../src/backend/select.js';
import { repoRoot } from '../src/config/index.js';
import { Dataset } from '../src/data/arrow-file.js';
import { demoShapes } from '../src/data/demo-data.js';
import { prepare } from '../src/data/prepare.js';
import { childLog } from '../src/log.js';
import { saveHfModel } from '../src/models/hf.js';
import { loadModel } from '../src/models/registry.js';
import { VitModel } from '../src/models/vit.js';
import { TrainEngine } from '../src/train/engine.js';
import { pretrain } from './demo/pretrain.js';
import { ClassificationTask, type ClassifierModel } from '../src/train/tasks/classification.js';

const log = childLog('make-demo-vit');
const SEED = 4321;
const STEPS = Number(process.env.DEMO_VIT_STEPS ?? 800);
const BATCH = 32;

async function main(): Promise<void> {
  await initBackend(process.env.ONELORA_BACKEND ?? 'wasm');
  const out = path.join(repoRoot(), 'models', 'demo-vit');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-demo-vit-'));
  try {
    const raw = path.join(work, 'raw');
    fs.mkdirSync(raw);
    // Seeds 0 and 1 drew data/demo/shapes: these images are disjoint from the demo's.
    fs.writeFileSync(path.join(raw, 'data_batch_1.bin'), demoShapes(100, SEED));
    fs.writeFileSync(path.join(raw, 'test_batch.bin'), demoShapes(10, SEED + 1));
    await prepare({ dataset: 'cifar10', input: raw, out: path.join(work, 'arrow'), imageSize: 32 });
    const train = Dataset.open(path.join(work, 'arrow', 'train.arrow'));
    const test = Dataset.open(path.join(work, 'arrow', 'test.arrow'));
    const loaded = await loadModel('tiny-vit', { numLabels: 10, seed: SEED });
    if (loaded.family !== 'vit') throw new Error('tiny-vit is not a ViT');
    const model = loaded.model;
    for (const l of model.linears()) {
      l.trainWeight = true;
      l.trainBias = l.bias !== null;
    }
    const task = new ClassificationTask({ random_resized_crop: true, crop_scale: [0.5, 1], hflip: true, image_size: 32 }, train.info);
    const engine = new TrainEngine(model as unknown as ClassifierModel, task, new Map(model.parameters()), {
      schedule: { name: 'cosine', baseLr: 2e-3, warmupSteps: 20, totalSteps: STEPS, minLrRatio: 0.05 },
      betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05, gradClip: 1.0, noDecay: (k) => /bias|norm/.test(k),
    });
    await pretrain(engine, train, { steps: STEPS, batch: BATCH, seed: SEED, log, logEvery: 50, units: () => BATCH });
    const ids = Array.from({ length: test.numRows }, (_, i) => i);
    const ev = await task.evaluate(model as unknown as ClassifierModel, [{ rows: test.rows(ids), ctx: { seed: SEED, epoch: 0, sampleIds: ids, training: false } }]);
    log.info(ev, 'held-out images of the pre-training task');
    // The backbone alone: the same parameters without the classifier, written as a ViTModel.
    const params = new Map([...model.parameters()].filter(([n]) => !n.startsWith('classifier.')));
    const backbone = new VitModel({ ...model.config, numLabels: 0, labels: [] }, params, { ...model.hfConfigBase, num_labels: undefined });
    const tmp = `${out}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    await saveHfModel(backbone, tmp, { dtype: 'F16' });
    fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    log.info({ out, params: [...params.values()].reduce((n, v) => n + v.size, 0), tensors: tf.memory().numTensors }, 'demo ViT written');
    train.close();
    test.close();
    model.dispose();
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
