// safetensors writer (docs/architecture.md#safetensors and #contracts): tensors in sorted name order, a header with no whitespace
// and no timestamps, padded with spaces to a multiple of 8 as the Rust reference pads it, so equal
// tensors always give byte-identical files. The file is written to `FILE.tmp-<pid>`, fsynced and
// renamed over FILE, then the directory is fsynced: a crash leaves the old file or the new one.
import fs from 'node:fs';
import path from 'node:path';
import { assertLittleEndian, f32ToBf16, f32ToF16, type WritableDtype } from './dtypes.js';

export interface TensorToWrite {
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
  /** Float32Array for F32/F16/BF16 (converted on write), Int32Array for I32/I64, Uint8Array/Int8Array for U8/I8. */
  readonly data: Float32Array | Int32Array | Uint8Array | Int8Array;
}

const BYTES: Record<WritableDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1, I8: 1 };
const SOURCE: Record<WritableDtype, typeof Float32Array | typeof Int32Array | typeof Uint8Array | typeof Int8Array> = {
  F32: Float32Array, F16: Float32Array, BF16: Float32Array, I32: Int32Array, I64: Int32Array, U8: Uint8Array, I8: Int8Array,
};

function byteView(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The little-endian bytes of one tensor as stored. */
function encode(t: TensorToWrite): Uint8Array {
  switch (t.dtype) {
    case 'F16':
      return byteView(f32ToF16(t.data as Float32Array));
    case 'BF16':
      return byteView(f32ToBf16(t.data as Float32Array));
    case 'I64': {
      const src = t.data as Int32Array;
      const out = new Int32Array(2 * src.length);
      for (let i = 0; i < src.length; i++) {
        out[2 * i] = src[i]!;
        out[2 * i + 1] = src[i]! >> 31; // sign extension into the high word
      }
      return byteView(out);
    }
    default:
      return byteView(t.data);
  }
}

function check(name: string, t: TensorToWrite): void {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`writeSafetensors: tensor '${name}': bad shape [${t.shape.join(', ')}]`);
  }
  if (!(t.data instanceof SOURCE[t.dtype])) {
    throw new Error(`writeSafetensors: tensor '${name}': ${t.dtype} is written from a ${SOURCE[t.dtype].name}, got ${t.data.constructor.name}`);
  }
  if (t.data.length !== numel) {
    throw new Error(`writeSafetensors: tensor '${name}': shape [${t.shape.join(', ')}] has ${numel} elements, data has ${t.data.length}`);
  }
}

/** Code-point order, independent of locale (localeCompare is not). */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The padded header bytes for tensors already in write order. */
function headerBytes(entries: [string, TensorToWrite][], metadata: Record<string, string> | undefined): Buffer {
  // Built by hand: a JS object would move integer-like names ("0") ahead of the others.
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const meta = Object.keys(metadata).sort(byName).map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
    parts.push(`"__metadata__":{${meta.join(',')}}`);
  }
  let offset = 0;
  for (const [name, t] of entries) {
    const size = t.data.length * BYTES[t.dtype];
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + size}]}`);
    offset += size;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  return Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}

/** Writes `tensors` to `file` atomically; metadata values must be strings (the format's rule). */
export function writeSafetensors(
  file: string, tensors: Readonly<Record<string, TensorToWrite>>, metadata?: Readonly<Record<string, string>>,
): void {
  assertLittleEndian();
  const entries = Object.entries(tensors).sort(([a], [b]) => byName(a, b));
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error("writeSafetensors: '__metadata__' is reserved and cannot name a tensor");
    check(name, t);
  }
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata '${k}' must be a string`);
  }
  const header = headerBytes(entries, metadata);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeAll(fd, len);
    writeAll(fd, header);
    // One tensor converted at a time, so a big F16 checkpoint is never held twice.
    for (const [, t] of entries) writeAll(fd, encode(t));
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/** Makes a rename durable; some filesystems refuse fsync on a directory, which only costs durability. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // EISDIR/EPERM/EINVAL on some platforms: nothing more can be done portably.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
