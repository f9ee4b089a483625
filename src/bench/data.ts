// Data-path benchmark (figures, never a test): rows/s of `data prepare` and micro-batches/s of the
// coordinator's read path (sampler → random-access rows → Arrow IPC bytes → worker decode), with
// the worker-side augmentation for images.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fromIpc, readFixed, readLm, toIpc } from '../data/arrow.js';
import { Dataset } from '../data/arrow-file.js';
import { trainBatch, VIT_NORMALIZE } from '../data/augment.js';
import { demoMetamath, demoShapes } from '../data/demo-data.js';
import { prepare } from '../data/prepare.js';
import { microBatchSamples } from '../data/sampler.js';

export interface DataBench {
  prepare_metamath_rows_per_s: number;
  prepare_cifar_rows_per_s: number;
  /** LM micro-batches of 4 rows read, shipped as IPC and decoded per second. */
  lm_batches_per_s: number;
  /** Image micro-batches of 10 read, shipped, decoded and augmented to 224×224 per second. */
  image_batches_per_s: number;
  image_batches_per_s_without_augment: number;
}

function readRate(file: string, micro: number, seconds: number, work: (b: ReturnType<typeof fromIpc>, keys: { index: number; epoch: number }[]) => void): number {
  const ds = Dataset.open(file);
  try {
    const spec = { epochSize: ds.numRows, globalBatch: micro, seed: 0, micro, workers: 1, rank: 0, accumIndex: 0 };
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < seconds * 1000) {
      const samples = microBatchSamples({ ...spec, samplesSeen: n * micro });
      const batch = fromIpc(toIpc(ds.rows(samples.map((s) => s.index))));
      work(batch, samples);
      n++;
    }
    return n / ((performance.now() - t0) / 1000);
  } finally {
    ds.close();
  }
}

export async function benchData(opts: { rows?: number; seconds?: number } = {}): Promise<DataBench> {
  const rows = opts.rows ?? 2000;
  const seconds = opts.seconds ?? 2;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onelora-bench-data-'));
  try {
    const mm = path.join(dir, 'mm.json');
    fs.writeFileSync(mm, JSON.stringify(demoMetamath(rows, 1)));
    const lm = await prepare({ dataset: 'metamath', input: mm, out: path.join(dir, 'lm'), tokenizer: 'llama-2' });
    const cifarIn = path.join(dir, 'cifar');
    fs.mkdirSync(cifarIn);
    fs.writeFileSync(path.join(cifarIn, 'data_batch_1.bin'), demoShapes(Math.ceil(rows / 10), 1));
    fs.writeFileSync(path.join(cifarIn, 'test_batch.bin'), demoShapes(1, 2));
    const img = await prepare({ dataset: 'cifar10', input: cifarIn, out: path.join(dir, 'img') });
    const aug = { size: 224, ...VIT_NORMALIZE };
    return {
      prepare_metamath_rows_per_s: lm.rows_per_s,
      prepare_cifar_rows_per_s: img.rows_per_s,
      lm_batches_per_s: readRate(path.join(dir, 'lm', 'train.arrow'), 4, seconds, (b) => void readLm(b)),
      image_batches_per_s: readRate(path.join(dir, 'img', 'train.arrow'), 10, seconds, (b, keys) => {
        trainBatch(readFixed<Uint8Array>(b, 'image').values, 32, 32, keys, 0, aug);
      }),
      image_batches_per_s_without_augment: readRate(path.join(dir, 'img', 'train.arrow'), 10, seconds, (b) => void readFixed(b, 'image')),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
