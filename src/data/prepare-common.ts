// What every `data prepare` source shares: options, the bad-input policy (error naming file and
// row, or skip and count), the seeded train/validation split, and writers that cut a split into
// record batches of about 1 MB (small batches keep random access cheap: the reader loads a whole
// batch to serve one row).
import type { RecordBatch, Schema } from 'apache-arrow';
import { UserError } from '../errors.js';
import { childLog } from '../log.js';
import { fixedBatch, lmBatch, type LmRow } from './arrow.js';
import { ArrowFileWriter } from './arrow-file.js';
import { Rng, mixSeed } from '../nn/rng.js';

export const log = childLog('data');

export const DATASETS = ['metamath', 'cifar10', 'cifar100', 'imagefolder', 'food101', 'latents', 'depth'] as const;
export type DatasetName = (typeof DATASETS)[number];

export interface PrepareOptions {
  dataset: DatasetName;
  input: string;
  out: string;
  /** `llama-2` or a tokenizer directory (metamath only). */
  tokenizer: string;
  /** Share of rows held out when the input has no split of its own (the paper's 80/20). */
  valFraction: number;
  seed: number;
  /** Tokens per LM row; longer rows are cut and counted (MetaMath trains with 512). */
  maxLen: number;
  skipBad: boolean;
  /** Side of the stored square images for imagefolder (docs/architecture.md#datasets: 256, cropped to the model size on the workers). */
  imageSize: number;
  /** Factor applied to input latents (1: the input is already scaled by the VAE factor 0.18215). */
  latentScale: number;
  /** depth: nyu, kitti or diode (src/data/depth-prepare.ts). */
  format?: string;
  /** depth: a BTS/Eigen split file listing image and depth paths. */
  splitFile?: string;
}

export const DEFAULTS = { tokenizer: 'llama-2', valFraction: 0.2, seed: 0, maxLen: 512, skipBad: false, imageSize: 256, latentScale: 1 } as const;

/** Collects skipped rows under --skip-bad; otherwise the first bad row is a UserError naming it. */
export class BadRows {
  skipped = 0;
  readonly examples: string[] = [];

  constructor(private readonly skipBad: boolean) {}

  /** `where` is "row N" (from 0, JSON arrays, archives) or "line N" (from 1, JSONL). */
  bad(file: string, where: string, problem: string): void {
    const msg = `${file}: ${where}: ${problem}`;
    if (!this.skipBad) throw new UserError(msg);
    this.skipped++;
    if (this.examples.length < 10) this.examples.push(msg);
    if (this.skipped <= 3) log.warn(msg + ' (skipped)');
  }
}

/** 1 where row i goes to validation: the first round(n·fraction) rows of a permutation seeded by `seed`. */
export function validationMask(n: number, fraction: number, seed: number): Uint8Array {
  if (!(fraction >= 0 && fraction < 1)) throw new UserError(`--val-fraction must be in [0, 1), got ${fraction}`);
  const mask = new Uint8Array(n);
  const perm = Rng.from(mixSeed(seed, 0x59117)).permutation(n);
  const nVal = Math.round(n * fraction);
  for (let k = 0; k < nVal; k++) mask[perm[k]!] = 1;
  return mask;
}

const TARGET_BATCH_BYTES = 1 << 20;

/** Rows per record batch for rows of `rowBytes` bytes. */
function batchRowsFor(rowBytes: number): number {
  return Math.max(1, Math.min(1024, Math.floor(TARGET_BATCH_BYTES / Math.max(1, rowBytes))));
}

abstract class SplitWriter {
  protected readonly writer: ArrowFileWriter;
  protected pending = 0;

  constructor(file: string, schema: Schema, protected readonly batchRows: number) {
    this.writer = new ArrowFileWriter(file, schema);
  }

  get rows(): number {
    return this.writer.rows + this.pending;
  }

  protected abstract take(): RecordBatch;

  protected flushIfFull(): void {
    if (this.pending >= this.batchRows) this.flush();
  }

  private flush(): void {
    if (this.pending === 0) return;
    this.writer.write(this.take());
    this.pending = 0;
  }

  async close(): Promise<void> {
    this.flush();
    await this.writer.close();
  }

  abort(): void {
    this.writer.abort();
  }
}

export class LmSplitWriter extends SplitWriter {
  private buf: LmRow[] = [];

  constructor(file: string, schema: Schema) {
    super(file, schema, 512);
  }

  add(row: LmRow): void {
    this.buf.push(row);
    this.pending++;
    this.flushIfFull();
  }

  protected take(): RecordBatch {
    const b = lmBatch(this.writer.schema, this.buf);
    this.buf = [];
    return b;
  }
}

/** Image (uint8) or latent (float32) rows of a fixed size. */
export class FixedSplitWriter<T extends Uint8Array | Float32Array> extends SplitWriter {
  private readonly values: T;
  private readonly labels: Int32Array;

  constructor(file: string, schema: Schema, private readonly rowSize: number, make: (n: number) => T) {
    const rows = batchRowsFor(rowSize * make(0).BYTES_PER_ELEMENT);
    super(file, schema, rows);
    this.values = make(rows * rowSize);
    this.labels = new Int32Array(rows);
  }

  add(row: ArrayLike<number>, label: number): void {
    if (row.length !== this.rowSize) throw new Error(`row of ${row.length} values, expected ${this.rowSize}`);
    this.values.set(row, this.pending * this.rowSize);
    this.labels[this.pending++] = label;
    this.flushIfFull();
  }

  protected take(): RecordBatch {
    // Copies: the buffer is reused for the next batch while the writer still holds this one.
    return fixedBatch(this.writer.schema, this.values.slice(0, this.pending * this.rowSize), this.labels.slice(0, this.pending));
  }
}
