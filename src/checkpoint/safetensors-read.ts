// safetensors reader (docs/architecture.md#safetensors). Hand-written: no maintained npm package reads or writes the
// format from Node (the reference implementation is Rust with Python bindings), and the format is
// small — an 8-byte little-endian header length N, N bytes of JSON
// `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}`, then the data.
//
// Opening reads only the header and validates the whole layout against the file's size; tensors
// are then read one at a time with positional reads, so a 7B model is never in memory twice: the
// caller turns each returned array into one tf variable and drops it.
import fs from 'node:fs';
import { UserError } from '../errors.js';
import {
  DTYPE_BYTES, READABLE_DTYPES, assertLittleEndian, bf16ToF32, f16ToF32, isDtype, isReadable,
  type SafetensorsDtype,
} from './dtypes.js';
import { duplicateTopLevelKey } from './json-keys.js';


/** The reference implementation's limit: a larger header is taken as a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data section (the header's `data_offsets`). */
  readonly begin: number;
  readonly end: number;
}

export type TensorData = Float32Array | Int32Array | Uint8Array | Int8Array;

/** F32/F16/BF16 come back as Float32Array, I32/I64 as Int32Array, U8/I8 as themselves. */
export interface LoadedTensor {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** An open checkpoint: one file, or a sharded directory behind one lookup. */
export interface SafetensorsSource {
  /** The file (or directory) errors name. */
  readonly file: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  read(name: string): LoadedTensor;
  close(): void;
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function fail(file: string, what: string, tensor?: string): never {
  throw new UserError(tensor === undefined ? `${file}: ${what}` : `${file}: tensor '${tensor}': ${what}`);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Fills `dst` from `position`, looping because a positional read may return fewer bytes. */
function readFully(fd: number, dst: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < dst.length) {
    // Reads above 2 GiB are refused by libuv, so large tensors go in 1 GiB pieces.
    const len = Math.min(dst.length - done, 1 << 30);
    const n = fs.readSync(fd, dst, done, len, position + done);
    if (n === 0) fail(file, `unexpected end of file at byte ${position + done} (file changed while open?)`, tensor);
    done += n;
  }
}

function parseEntry(file: string, name: string, raw: unknown): TensorInfo {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, 'header entry is not an object', name);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !isDtype(dtype)) {
    fail(file, `unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`, name);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
    fail(file, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) || offsets[0] > offsets[1]) {
    fail(file, `data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 ≤ begin ≤ end`, name);
  }
  return { dtype, shape: Object.freeze([...shape]), begin: offsets[0], end: offsets[1] };
}

function parseMetadata(file: string, raw: unknown): Record<string, string> {
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, '__metadata__ is not an object');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') fail(file, `__metadata__ '${k}' is ${JSON.stringify(v)}, expected a string`);
  }
  return Object.freeze({ ...(raw as Record<string, string>) });
}

/**
 * Checks the layout: offsets contiguous from 0 in offset order, each size = numel × dtype size,
 * and the data section exactly as long as the last end.
 */
function checkLayout(file: string, tensors: Map<string, TensorInfo>, dataBytes: number): void {
  const order = [...tensors].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let last = '';
  for (const [name, t] of order) {
    const where = `data_offsets [${t.begin}, ${t.end}]`;
    if (t.begin !== expected) {
      fail(file, `${where} ${t.begin > expected ? 'leave a gap after' : 'overlap'} ${last ? `tensor '${last}'` : 'the start of the data'} (expected begin ${expected})`, name);
    }
    const want = numelOf(t.shape) * DTYPE_BYTES[t.dtype];
    if (t.end - t.begin !== want) {
      fail(file, `${where} hold ${t.end - t.begin} bytes, but ${t.dtype} of shape [${t.shape.join(', ')}] needs ${want}`, name);
    }
    if (t.end > dataBytes) {
      fail(file, `${where} run past the end of the file (data section has ${dataBytes} bytes; truncated?)`, name);
    }
    expected = t.end;
    last = name;
  }
  if (expected !== dataBytes) {
    fail(file, `${dataBytes - expected} trailing bytes after the last tensor${last ? ` '${last}'` : ''} (file length must be 8 + header + ${expected})`);
  }
}

function decode(file: string, name: string, info: TensorInfo, fd: number, dataStart: number): TensorData {
  const n = numelOf(info.shape);
  const pos = dataStart + info.begin;
  const bytes = (a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }): Uint8Array =>
    new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (info.dtype) {
    case 'F32': {
      const out = new Float32Array(n);
      readFully(fd, bytes(out), pos, file, name);
      return out;
    }
    case 'I32': {
      const out = new Int32Array(n);
      readFully(fd, bytes(out), pos, file, name);
      return out;
    }
    case 'F16':
    case 'BF16': {
      const raw = new Uint16Array(n);
      readFully(fd, bytes(raw), pos, file, name);
      return info.dtype === 'F16' ? f16ToF32(raw) : bf16ToF32(raw);
    }
    case 'I64': {
      // Read as (lo, hi) int32 pairs; a value fits in int32 exactly when hi is lo's sign extension.
      const raw = new Int32Array(2 * n);
      readFully(fd, bytes(raw), pos, file, name);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const lo = raw[2 * i]!;
        if (raw[2 * i + 1] !== lo >> 31) {
          const v = (BigInt(raw[2 * i + 1]!) << 32n) | BigInt(lo >>> 0);
          fail(file, `I64 value ${v} at index ${i} does not fit in int32`, name);
        }
        out[i] = lo;
      }
      return out;
    }
    case 'U8': {
      const out = new Uint8Array(n);
      readFully(fd, out, pos, file, name);
      return out;
    }
    case 'I8': {
      const out = new Int8Array(n);
      readFully(fd, bytes(out), pos, file, name);
      return out;
    }
    default:
      return fail(file, `dtype ${info.dtype} is not supported (readable: ${READABLE_DTYPES.join(', ')})`, name);
  }
}

/** A read descriptor of a weights file; a UserError naming it (and the errno code) when it cannot be opened. */
export function openWeightsFd(file: string): number {
  assertLittleEndian();
  try {
    return fs.openSync(file, 'r');
  } catch (err) {
    throw new UserError(`${file}: cannot open (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
}

/** Opens one .safetensors file: reads and validates the header, keeps the descriptor for reads. */
export function openSafetensors(file: string): SafetensorsSource {
  const fd = openWeightsFd(file);
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) fail(file, `file is ${size} bytes, too short for the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readFully(fd, lenBuf, 0, file);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
    const headerBytes = Number(n);
    if (8 + headerBytes > size) {
      fail(file, `header length ${headerBytes} runs past the end of the ${size}-byte file (truncated, or not a safetensors file?)`);
    }
    const headerBuf = Buffer.alloc(headerBytes);
    readFully(fd, headerBuf, 8, file);
    const text = headerBuf.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      fail(file, `header is not valid JSON (${(err as Error).message})`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail(file, 'header is not a JSON object');
    const dup = duplicateTopLevelKey(text);
    if (dup !== null) fail(file, 'appears more than once in the header', dup);

    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(parsed)) {
      if (name === '__metadata__') metadata = parseMetadata(file, raw);
      else tensors.set(name, parseEntry(file, name, raw));
    }
    const dataStart = 8 + headerBytes;
    checkLayout(file, tensors, size - dataStart);
    return fileSource(file, fd, dataStart, tensors, metadata);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function fileSource(
  file: string, fd: number, dataStart: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string>,
): SafetensorsSource {
  let open = true;
  return {
    file,
    metadata,
    tensors,
    read(name: string): LoadedTensor {
      if (!open) throw new Error(`${file}: read('${name}') after close()`);
      const info = tensors.get(name);
      if (!info) fail(file, 'no such tensor in the file', name);
      if (!isReadable(info.dtype)) fail(file, `dtype ${info.dtype} is not supported (readable: ${READABLE_DTYPES.join(', ')})`, name);
      return { dtype: info.dtype, shape: info.shape, data: decode(file, name, info, fd, dataStart) };
    },
    close(): void {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

/** Reads every tensor of a small file at once (adapters, optimizer state); big models stream. */
export function readSafetensors(file: string): { metadata: Record<string, string>; tensors: Map<string, LoadedTensor> } {
  const src = openSafetensors(file);
  try {
    const tensors = new Map<string, LoadedTensor>();
    for (const name of src.tensors.keys()) tensors.set(name, src.read(name));
    return { metadata: { ...src.metadata }, tensors };
  } finally {
    src.close();
  }
}
