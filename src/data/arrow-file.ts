// Arrow IPC files on disk: a streaming writer that only ever shows the finished file under its name
// (temp file, fsync, rename), and a random-access reader. The reader reads the footer once and
// then each record batch on demand with positioned reads, so a 15 GB image set is never loaded whole;
// a batch is decoded by wrapping its block bytes in a one-batch in-memory file.
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { RecordBatchFileWriter, tableFromIPC, type RecordBatch, type Schema } from 'apache-arrow';
import { FileBlock, Footer } from 'apache-arrow/ipc/metadata/file';
import { Message } from 'apache-arrow/ipc/metadata/message';
import { UserError, messageOf } from '../errors.js';
import { concatBatches, describeSchema, emptyBatch, takeRows, type SchemaInfo } from './arrow.js';

const MAGIC = Buffer.from('ARROW1', 'latin1');

/** Writes record batches of one schema to `file` through `file.tmp-PID`; `close()` renames it into place. */
export class ArrowFileWriter {
  private readonly writer = new RecordBatchFileWriter();
  private readonly out: fs.WriteStream;
  private readonly tmp: string;
  private wrote = false;
  private error: Error | undefined;
  rows = 0;

  constructor(readonly file: string, readonly schema: Schema) {
    this.tmp = `${file}.tmp-${process.pid}`;
    // Opened synchronously so that an abort right after construction cannot race the open.
    this.out = fs.createWriteStream(this.tmp, { fd: fs.openSync(this.tmp, 'w') });
    this.out.on('error', (err) => {
      this.error ??= err;
    });
    this.writer.pipe(this.out);
  }

  write(batch: RecordBatch): void {
    if (batch.numRows === 0 && this.wrote) return;
    this.writer.write(batch);
    this.wrote = true;
    this.rows += batch.numRows;
  }

  async close(): Promise<void> {
    // An empty split still gets its schema (and metadata) on disk.
    if (!this.wrote) this.write(emptyBatch(this.schema));
    const finished = once(this.out, 'close');
    this.writer.finish();
    await finished;
    if (this.error) throw new Error(`${this.tmp}: ${this.error.message}`, { cause: this.error });
    const fd = fs.openSync(this.tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(this.tmp, this.file);
  }

  abort(): void {
    this.out.destroy();
    fs.rmSync(this.tmp, { force: true });
  }
}

interface Block {
  offset: number;
  metaLength: number;
  bodyLength: number;
  /** Index of the block's first row in the file. */
  start: number;
  rows: number;
}

function readInto(fd: number, buf: Buffer, at: number, length: number, position: number): void {
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, at + got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  if (got !== length) throw new Error(`short read at byte ${position}: ${got} of ${length} bytes`);
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  readInto(fd, buf, 0, length, position);
  return buf;
}

/** Row count of a record-batch block, from its metadata message alone (no body read). */
function blockRows(meta: Buffer): number {
  // Encapsulated message: [0xFFFFFFFF continuation][int32 length][flatbuffer Message], or the pre-1.0 form without the marker.
  const skip = meta.readUInt32LE(0) === 0xffffffff ? 8 : 4;
  const msg = Message.decode(meta.subarray(skip));
  if (!msg.isRecordBatch()) throw new Error('a footer block is not a record batch');
  return Number(msg.header().length);
}

/** A dataset split on disk with random access by row index. */
export class Dataset {
  readonly info: SchemaInfo;
  readonly numRows: number;
  private readonly cache = new Map<number, RecordBatch>();
  private cachedBytes = 0;
  /** Decoded batches kept (LRU): a step's random rows touch many batches, re-reading them is the cost. */
  private static readonly CACHE_BYTES = 64 << 20;

  private constructor(
    readonly file: string,
    private readonly fd: number,
    readonly schema: Schema,
    private readonly version: Footer['version'],
    private readonly blocks: Block[],
  ) {
    this.info = describeSchema(schema);
    const last = blocks[blocks.length - 1];
    this.numRows = last ? last.start + last.rows : 0;
  }

  /** Opens and validates `file`; a truncated or corrupt file is a UserError naming it. */
  static open(file: string): Dataset {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw new UserError(`${file}: cannot open dataset: ${messageOf(err)}`, { cause: err });
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 18 || !readAt(fd, 0, 6).equals(MAGIC) || !readAt(fd, size - 6, 6).equals(MAGIC)) {
        throw new Error(`not a complete Arrow IPC file (${size} bytes; the ARROW1 magic at start or end is missing)`);
      }
      const footerLength = readAt(fd, size - 10, 4).readInt32LE(0);
      const footerStart = size - 10 - footerLength;
      if (footerLength <= 0 || footerStart < 8) throw new Error(`bad footer length ${footerLength}`);
      const footer = Footer.decode(readAt(fd, footerStart, footerLength));
      const blocks: Block[] = [];
      let start = 0;
      for (const b of footer.recordBatches()) {
        const offset = Number(b.offset);
        const bodyLength = Number(b.bodyLength);
        if (offset + b.metaDataLength + bodyLength > footerStart) throw new Error(`record batch ${blocks.length} runs past the footer`);
        const rows = blockRows(readAt(fd, offset, b.metaDataLength));
        blocks.push({ offset, metaLength: b.metaDataLength, bodyLength, start, rows });
        start += rows;
      }
      let schema: Schema;
      try {
        describeSchema(footer.schema);
        schema = footer.schema;
      } catch (err) {
        throw new UserError(`${file}: ${messageOf(err)}`, { cause: err });
      }
      return new Dataset(file, fd, schema, footer.version, blocks);
    } catch (err) {
      fs.closeSync(fd);
      if (err instanceof UserError) throw err;
      throw new UserError(`${file}: truncated or corrupt Arrow file: ${messageOf(err)}`, { cause: err });
    }
  }

  get numBatches(): number {
    return this.blocks.length;
  }

  /** Record batch `i` of the file (cached: the sampler reads a few batches repeatedly within a step). */
  batch(i: number): RecordBatch {
    const hit = this.cache.get(i);
    if (hit) {
      this.cache.delete(i); // re-inserted last: most recently used
      this.cache.set(i, hit);
      return hit;
    }
    const b = this.blocks[i];
    if (!b) throw new RangeError(`${this.file}: record batch ${i} of ${this.blocks.length}`);
    let batch: RecordBatch;
    try {
      // [ARROW1\0\0][block bytes][footer naming one block at offset 8][footer length][ARROW1], read in place.
      const footer = Footer.encode(new Footer(this.schema, this.version, [new FileBlock(b.metaLength, b.bodyLength, 8)], []));
      const size = b.metaLength + b.bodyLength;
      const mini = Buffer.allocUnsafe(8 + size + footer.length + 10);
      MAGIC.copy(mini, 0);
      mini.fill(0, 6, 8);
      readInto(this.fd, mini, 8, size, b.offset);
      mini.set(footer, 8 + size);
      mini.writeInt32LE(footer.length, 8 + size + footer.length);
      MAGIC.copy(mini, 8 + size + footer.length + 4);
      const got = tableFromIPC(mini).batches[0];
      if (!got || got.numRows !== b.rows) throw new Error(`expected ${b.rows} rows`);
      batch = got;
    } catch (err) {
      throw new UserError(`${this.file}: corrupt record batch ${i} (rows ${b.start}..${b.start + b.rows - 1}): ${messageOf(err)}`, { cause: err });
    }
    this.cache.set(i, batch);
    this.cachedBytes += b.bodyLength;
    for (const [k] of this.cache) {
      if (this.cachedBytes <= Dataset.CACHE_BYTES || this.cache.size <= 1) break;
      this.cachedBytes -= this.blocks[k]!.bodyLength;
      this.cache.delete(k);
    }
    return batch;
  }

  /** The rows at `indices` (any order, repeats allowed) as one record batch of this schema. */
  rows(indices: ArrayLike<number>): RecordBatch {
    const parts: RecordBatch[] = [];
    let run: number[] = [];
    let runBlock = -1;
    const flush = (): void => {
      if (run.length === 0) return;
      const b = this.blocks[runBlock]!;
      const src = this.batch(runBlock);
      parts.push(takeRows(src, run.map((r) => r - b.start)));
      run = [];
    };
    for (let k = 0; k < indices.length; k++) {
      const r = indices[k]!;
      if (!Number.isInteger(r) || r < 0 || r >= this.numRows) throw new RangeError(`${this.file}: row ${r} out of range 0..${this.numRows - 1}`);
      const bi = this.blockOf(r);
      if (bi !== runBlock) {
        flush();
        runBlock = bi;
      }
      run.push(r);
    }
    flush();
    return parts.length === 0 ? emptyBatch(this.schema) : concatBatches(this.schema, parts);
  }

  private blockOf(row: number): number {
    let lo = 0;
    let hi = this.blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.blocks[mid]!.start <= row) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  close(): void {
    this.cache.clear();
    this.cachedBytes = 0;
    fs.closeSync(this.fd);
  }
}

/** The splits of a prepared dataset directory, in a fixed order. */
export function datasetSplits(dir: string): { split: string; file: string }[] {
  return ['train', 'validation', 'test']
    .map((split) => ({ split, file: path.join(dir, `${split}.arrow`) }))
    .filter((s) => fs.existsSync(s.file));
}
