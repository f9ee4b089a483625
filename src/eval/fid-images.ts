// FID from images (docs/dit.md#fid): Inception pool3 features of a folder of images or an image
// Arrow file, statistics as pytorch-fid computes them (np.mean, np.cov with ddof 1), against a
// reference given as images, a pytorch-fid `.npz` (mu, sigma) or one of ADM's reference batches
// (`arr_0` images [N, H, W, 3] uint8, and/or mu/sigma). Images are fed at their stored size: the
// network resizes to 299 itself.
import fs from 'node:fs';
import { tf } from '../backend/tf.js';
import { Dataset } from '../data/arrow-file.js';
import { listImageFiles, readRgb } from '../data/image-files.js';
import { UserError } from '../errors.js';
import { childLog } from '../log.js';
import { featureStats, frechetDistance, readNpzStats, type FeatureStats } from './fid.js';
import { FidInception } from './inception.js';
import { readNpz, writeNpz } from './npy.js';

const log = childLog('fid');

/** A source of same-sized 8-bit RGB images, read `count` at a time. */
interface ImageSource {
  readonly n: number;
  readonly height: number;
  readonly width: number;
  /** Images [start, start + count) as H × W × 3 bytes back to back. */
  read(start: number, count: number): Promise<Uint8Array>;
  close(): void;
}

async function folderSource(dir: string, flag: string): Promise<ImageSource> {
  const files = listImageFiles(dir, flag);
  const { height, width } = await readRgb(files[0]!);
  return {
    n: files.length, height, width,
    async read(start: number, count: number): Promise<Uint8Array> {
      const out: Uint8Array[] = [];
      for (const f of files.slice(start, start + count)) {
        const im = await readRgb(f);
        if (im.height !== height || im.width !== width) throw new UserError(`${flag}: ${f} is ${im.width}×${im.height}, ${files[0]} is ${width}×${height}; FID batches need one size`);
        out.push(im.data);
      }
      return Buffer.concat(out);
    },
    close: () => undefined,
  };
}

async function openImages(input: string, flag: string): Promise<ImageSource> {
  if (!fs.existsSync(input)) throw new UserError(`${flag} ${input}: no such file or directory`);
  if (fs.statSync(input).isFile() && /\.(arrow|ipc|feather)$/.test(input)) {
    const ds = Dataset.open(input);
    const { kind, height, width } = ds.info;
    if (kind !== 'image' || height === undefined || width === undefined) {
      ds.close();
      throw new UserError(`${flag} ${input}: not an image dataset (image: FixedSizeList<Uint8> rows)`);
    }
    return {
      n: ds.numRows, height, width,
      read: (start, count) => {
        const b = ds.rows(Array.from({ length: Math.min(count, ds.numRows - start) }, (_, i) => start + i));
        const col = b.getChild('image')!;
        const vals = col.data[0]!.children[0]!.values as Uint8Array;
        const off = col.data[0]!.offset * height * width * 3;
        return Promise.resolve(vals.slice(off, off + b.numRows * height * width * 3));
      },
      close: () => ds.close(),
    };
  }
  return folderSource(input, flag);
}

function arraySource(data: Float64Array, shape: readonly number[], what: string): ImageSource {
  if (shape.length !== 4 || shape[3] !== 3) throw new UserError(`${what}: arr_0 has shape [${shape.join(', ')}], expected [N, H, W, 3] images`);
  const [n, height, width] = shape as [number, number, number, number];
  const per = height * width * 3;
  return { n, height, width, read: (start, count) => Promise.resolve(Uint8Array.from(data.subarray(start * per, Math.min(n, start + count) * per))), close: () => undefined };
}

/** Inception features [N, 2048] of every image of `src`, `batch` at a time, with progress. */
async function inceptionFeatures(net: FidInception, src: ImageSource, what: string, batch = 8): Promise<Float32Array> {
  if (src.n < 2) throw new UserError(`${what}: ${src.n} image(s); a covariance needs at least 2`);
  const out = new Float32Array(src.n * 2048);
  const started = Date.now();
  for (let at = 0; at < src.n; at += batch) {
    const m = Math.min(batch, src.n - at);
    const px = await src.read(at, m);
    const x = tf.tensor4d(px, [m, src.height, src.width, 3], 'float32');
    const f = net.features(x);
    x.dispose();
    out.set(await f.data(), at * 2048);
    f.dispose();
    log.info({ what, done: at + m, of: src.n, elapsed_s: (Date.now() - started) / 1000 }, 'inception features');
  }
  return out;
}

export interface FidImagesOptions {
  readonly images: string;
  readonly ref?: string;
  readonly inception: string;
  readonly saveStats?: string;
  readonly batch?: number;
}

export interface FidImagesResult {
  readonly fid: number | null;
  readonly n_images: number;
  /** 0 when the reference came as statistics (an .npz does not record its count). */
  readonly n_ref: number;
  readonly dim: number;
  readonly stats: string | null;
}

/** Statistics of a reference: images (folder or Arrow), or an .npz with mu/sigma, or ADM's arr_0 images. */
async function refStats(net: () => FidInception, ref: string, batch: number): Promise<FeatureStats> {
  if (ref.endsWith('.npz')) {
    if (!fs.existsSync(ref)) throw new UserError(`--ref ${ref}: no such file`);
    const s = readNpzStats(ref);
    if (s) return s;
    const arr = readNpz(ref).get('arr_0');
    if (!arr) throw new UserError(`--ref ${ref}: neither mu/sigma (pytorch-fid) nor arr_0 (ADM reference images)`);
    return featureStats(await inceptionFeatures(net(), arraySource(arr.data, arr.shape, `--ref ${ref}`), '--ref', batch), arr.shape[0]!, 2048);
  }
  const src = await openImages(ref, '--ref');
  try {
    return featureStats(await inceptionFeatures(net(), src, '--ref', batch), src.n, 2048);
  } finally {
    src.close();
  }
}

export async function fidFromImages(o: FidImagesOptions): Promise<FidImagesResult> {
  if (o.ref === undefined && o.saveStats === undefined) throw new UserError('eval fid --images: give --ref (to compute FID) and/or --save-stats FILE.npz');
  if (o.saveStats !== undefined && !o.saveStats.endsWith('.npz')) throw new UserError(`--save-stats ${o.saveStats}: statistics are written as .npz (mu, sigma)`);
  const batch = o.batch ?? 8;
  let net: FidInception | null = null;
  const getNet = (): FidInception => (net ??= FidInception.load(o.inception));
  const src = await openImages(o.images, '--images');
  try {
    const feats = await inceptionFeatures(getNet(), src, '--images', batch);
    const mine = featureStats(feats, src.n, 2048);
    if (o.saveStats !== undefined) writeNpz(o.saveStats, { mu: { data: mine.mean, shape: [2048] }, sigma: { data: mine.cov, shape: [2048, 2048] } });
    const ref = o.ref !== undefined ? await refStats(getNet, o.ref, batch) : null;
    return { fid: ref ? frechetDistance(ref, mine) : null, n_images: src.n, n_ref: ref?.n ?? 0, dim: 2048, stats: o.saveStats ?? null };
  } finally {
    src.close();
    (net as FidInception | null)?.dispose();
  }
}
