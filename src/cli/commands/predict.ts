// `onelora predict` (docs/architecture.md#cli-conventions): top-5 classes of one image with a ViT, preprocessed as the
// model directory's preprocessor_config.json says (ViTImageProcessor: resize to height × width
// ignoring the aspect ratio, rescale by 1/255, normalise by mean/std). Images decode with sharp;
// its bilinear resize stands in for PIL's (resample=2), which differ slightly when downscaling.
import fs from 'node:fs';
import type { Command } from 'commander';
import sharp from 'sharp';
import { initBackend, tf } from '../../backend/select.js';
import { UserError, messageOf } from '../../errors.js';
import type { VitPreprocess } from '../../models/vit-config.js';
import { backendOption } from '../flags.js';
import { action, printResult } from '../run.js';
import { loadWithAdapter } from './model-common.js';

interface PredictFlags {
  model?: string;
  adapter?: string;
  image?: string;
  backend?: string;
  json?: boolean;
}

/** The image as a normalised [1, H, W, 3] float tensor. */
async function preprocessImage(file: string, p: VitPreprocess): Promise<tf.Tensor4D> {
  if (!fs.existsSync(file)) throw new UserError(`--image ${file}: no such file`);
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    let img = sharp(file).removeAlpha().toColourspace('srgb');
    if (p.doResize) img = img.resize(p.width, p.height, { fit: 'fill', kernel: 'linear' });
    raw = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new UserError(`--image ${file}: cannot decode (${messageOf(err)})`, { cause: err });
  }
  const { width, height, channels } = raw.info;
  const px = new Float32Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) {
      let v = raw.data[i * channels + Math.min(c, channels - 1)]!;
      if (p.doRescale) v *= p.rescaleFactor;
      if (p.doNormalize) v = (v - p.mean[c]!) / p.std[c]!;
      px[i * 3 + c] = v;
    }
  }
  return tf.tensor4d(px, [1, height, width, 3]);
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('top-5 classes of an image with a ViT classifier')
    .option('--model <dir>', 'ViT model directory')
    .option('--adapter <dir>', 'adapter directory applied on top (may carry the task head)')
    .option('--image <file>', 'image file (JPEG, PNG, WebP, …)')
    .addOption(backendOption())
    .option('--json', 'one JSON object on the last line')
    .action(action(async (f: PredictFlags) => {
      if (!f.image) throw new UserError('--image is required');
      await initBackend(f.backend);
      const { loaded, peft } = await loadWithAdapter(f.model, f.adapter);
      try {
        if (loaded.family !== 'vit') throw new UserError(`--model ${f.model}: a ${loaded.family} model is not an image classifier`);
        const model = loaded.model;
        if (model.config.numLabels === 0) throw new UserError(`--model ${f.model}: no classifier (a headless ViT); give an --adapter that carries one`);
        const pixels = await preprocessImage(f.image, model.config.preprocess);
        const probsT = tf.tidy(() => tf.softmax(model.logits(pixels)));
        const probs = (await probsT.data()) as Float32Array;
        probsT.dispose();
        pixels.dispose();
        const top5 = Array.from(probs.keys())
          .sort((a, b) => probs[b]! - probs[a]! || a - b)
          .slice(0, 5)
          .map((index) => ({ index, label: model.config.labels[index] ?? `LABEL_${index}`, prob: probs[index]! }));
        printResult(!!f.json, { top5 }, top5.map((t) => `${t.prob.toFixed(4)}  ${t.index}  ${t.label}`).join('\n'));
      } finally {
        peft?.dispose();
        loaded.model.dispose();
      }
    }));
}
