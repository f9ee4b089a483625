// NumPy's `.npy` and `.npz` files (numpy/lib/format.py, "NEP 1"), for pytorch-fid's statistics
// (`mu`, `sigma`), ADM's reference batches (`arr_0` images, or `mu`/`sigma`) and feature arrays.
// A .npy is the magic `\x93NUMPY`, a version, a header length (u16 in 1.0, u32 in 2.0/3.0), a
// Python-literal dict `{'descr': '<f8', 'fortran_order': False, 'shape': (…), }` and the raw data;
// a .npz is a zip of .npy files, one per array name (src/checkpoint/zip.ts reads it). Hand-written:
// no npm package for the format is a dependency here, and only C-order little-endian numbers are needed.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { readZipDirectory, readZipRange } from '../checkpoint/zip.js';
import { UserError } from '../errors.js';

export interface NpyArray {
  readonly shape: number[];
  /** Floats widened to float64; integers as float64 too (uint8 images stay exact). */
  readonly data: Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const READERS: Readonly<Record<string, (dv: DataView, at: number) => number>> = {
  f8: (dv, at) => dv.getFloat64(at, true), f4: (dv, at) => dv.getFloat32(at, true),
  i8: (dv, at) => Number(dv.getBigInt64(at, true)), i4: (dv, at) => dv.getInt32(at, true), u1: (dv, at) => dv.getUint8(at),
  i1: (dv, at) => dv.getInt8(at), u2: (dv, at) => dv.getUint16(at, true), i2: (dv, at) => dv.getInt16(at, true),
};

/** Parses one .npy held in `bytes`. `what` names it in errors (a file, or `file:name` inside an .npz). */
function parseNpy(bytes: Uint8Array, what: string): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new UserError(`${what}: not a .npy array (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = Buffer.from(bytes.subarray(start, start + headerLen)).toString('latin1');
  const descr = header.match(/'descr':\s*'([<>|=])([a-z]\d+)'/);
  const fortran = header.match(/'fortran_order':\s*(True|False)/);
  const shapeText = header.match(/'shape':\s*\(([^)]*)\)/);
  if (!descr || !fortran || !shapeText) throw new UserError(`${what}: unreadable .npy header ${JSON.stringify(header.trim())}`);
  const [, order, type] = descr as unknown as [string, string, string];
  const read = READERS[type];
  if (!read || order === '>') throw new UserError(`${what}: dtype '${order}${type}' is not supported (little-endian f8, f4, integers)`);
  if (fortran[1] === 'True') throw new UserError(`${what}: a Fortran-order array; save it with numpy.ascontiguousarray`);
  const shape = shapeText[1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const size = Number(type.slice(1));
  const offset = start + headerLen;
  if (offset + n * size > bytes.length) throw new UserError(`${what}: holds ${bytes.length - offset} data bytes, shape [${shape.join(', ')}] needs ${n * size}`);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = read(dv, offset + i * size);
  return { shape, data };
}

export function readNpy(file: string): NpyArray {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
  return parseNpy(new Uint8Array(fs.readFileSync(file)), file);
}

/** The arrays of an .npz, by name (without `.npy`). */
export function readNpz(file: string): Map<string, NpyArray> {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
  const fd = fs.openSync(file, 'r');
  try {
    const out = new Map<string, NpyArray>();
    for (const [name, entry] of readZipDirectory(fd, file)) {
      if (!name.endsWith('.npy')) continue;
      out.set(name.slice(0, -4), parseNpy(readZipRange(fd, entry, 0, entry.size, file), `${file}:${name}`));
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/** One float64 .npy (version 1.0) of `shape`. */
function npyBytes(data: Float64Array, shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f8', 'fortran_order': False, 'shape': (${dims}), }`;
  // The whole preamble (10 bytes + header + '\n') is padded to a multiple of 64, as numpy writes it.
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from(MAGIC).copy(head);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Writes float64 arrays as an uncompressed .npz (numpy.savez): a stored zip, one `<name>.npy` each. */
export function writeNpz(file: string, arrays: Readonly<Record<string, { data: Float64Array; shape: readonly number[] }>>): void {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, a] of Object.entries(arrays)) {
    const body = npyBytes(a.data, a.shape);
    const fname = Buffer.from(`${name}.npy`);
    const crc = zlib.crc32(body);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(body.length, 22);
    local.writeUInt16LE(fname.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(body.length, 24);
    cd.writeUInt16LE(fname.length, 28);
    cd.writeUInt32LE(offset, 42);
    locals.push(local, fname, body);
    central.push(cd, fname);
    offset += 30 + fname.length + body.length;
  }
  const cdBytes = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(Object.keys(arrays).length, 8);
  eocd.writeUInt16LE(Object.keys(arrays).length, 10);
  eocd.writeUInt32LE(cdBytes.length, 12);
  eocd.writeUInt32LE(offset, 16);
  fs.writeFileSync(file, Buffer.concat([...locals, cdBytes, eocd]));
}
