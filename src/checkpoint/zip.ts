// The zip reading torch.save archives need (docs/models.md#pytorch-bin-and-pt-files): the central
// directory (with zip64, as a 7B shard is over 4 GiB), each entry's local header for where its data
// starts, and entries stored (method 0, what torch.save writes, 64-byte aligned) or deflated (method
// 8, an archive re-zipped by hand) through node:zlib. Hand-written: no zip reader is installed, and
// this is the read-only subset of APPNOTE.TXT (PKWARE's specification) that a checkpoint uses.
// Stored entries are read by positional reads, so a tensor never needs its whole file in memory.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { UserError } from '../errors.js';

export interface ZipEntry {
  readonly name: string;
  /** 0 stored, 8 deflate. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the entry's first data byte in the file. */
  readonly dataOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;

/** Fills `dst` from `position`, looping because a positional read may return fewer bytes. */
export function readAt(fd: number, dst: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < dst.length) {
    // libuv refuses reads above 2 GiB, so large tensors go in 1 GiB pieces.
    const n = fs.readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), position + done);
    if (n === 0) throw new UserError(`${file}: unexpected end of file at byte ${position + done} (truncated?)`);
    done += n;
  }
}

function u64(b: Buffer, at: number, file: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${file}: zip64 field ${v} is too large`);
  return Number(v);
}

/** Finds the end-of-central-directory record: the last 22 bytes, or before a comment of up to 64 KiB. */
function centralDirectory(fd: number, size: number, file: string): { offset: number; bytes: number; count: number } {
  const tailLen = Math.min(size, 22 + 0xffff + 20);
  const tail = Buffer.alloc(tailLen);
  readAt(fd, tail, size - tailLen, file);
  let at = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      at = i;
      break;
    }
  }
  if (at < 0) throw new UserError(`${file}: no zip end-of-central-directory record (truncated, or not a zip archive)`);
  let count = tail.readUInt16LE(at + 10);
  let bytes = tail.readUInt32LE(at + 12);
  let offset = tail.readUInt32LE(at + 16);
  if (at >= 20 && tail.readUInt32LE(at - 20) === ZIP64_LOCATOR) {
    const rec = Buffer.alloc(56);
    readAt(fd, rec, u64(tail, at - 20 + 8, file), file);
    if (rec.readUInt32LE(0) !== ZIP64_EOCD) throw new UserError(`${file}: zip64 locator does not point at a zip64 end record`);
    count = u64(rec, 32, file);
    bytes = u64(rec, 40, file);
    offset = u64(rec, 48, file);
  }
  if (offset + bytes > size) throw new UserError(`${file}: zip central directory runs past the end of the ${size}-byte file (truncated?)`);
  return { offset, bytes, count };
}

/** The zip64 extra field (id 1) holds, in order, each of these three that the header set to 0xffffffff. */
function zip64Extra(extra: Buffer, want: { size: boolean; csize: boolean; offset: boolean }, file: string): number[] {
  for (let i = 0; i + 4 <= extra.length;) {
    const id = extra.readUInt16LE(i);
    const len = extra.readUInt16LE(i + 2);
    if (id === 1) {
      const out: number[] = [];
      const n = Number(want.size) + Number(want.csize) + Number(want.offset);
      for (let k = 0; k < n; k++) out.push(u64(extra, i + 4 + 8 * k, file));
      return out;
    }
    i += 4 + len;
  }
  throw new UserError(`${file}: a zip entry needs a zip64 extra field and has none`);
}

/** Lists the archive's entries by name, with where each one's data starts. */
export function readZipDirectory(fd: number, file: string): Map<string, ZipEntry> {
  const size = fs.fstatSync(fd).size;
  const cd = centralDirectory(fd, size, file);
  const buf = Buffer.alloc(cd.bytes);
  readAt(fd, buf, cd.offset, file);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < cd.count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== CENTRAL) throw new UserError(`${file}: zip central directory entry ${i} is corrupt`);
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    let csize = buf.readUInt32LE(p + 20);
    let usize = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    const want = { size: usize === U32_MAX, csize: csize === U32_MAX, offset: local === U32_MAX };
    if (want.size || want.csize || want.offset) {
      const vals = zip64Extra(buf.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), want, file);
      if (want.size) usize = vals.shift()!;
      if (want.csize) csize = vals.shift()!;
      if (want.offset) local = vals.shift()!;
    }
    if ((flags & 1) !== 0) throw new UserError(`${file}: zip entry '${name}' is encrypted`);
    if (method !== 0 && method !== 8) throw new UserError(`${file}: zip entry '${name}' uses compression method ${method} (readable: 0 stored, 8 deflate)`);
    const head = Buffer.alloc(30);
    readAt(fd, head, local, file);
    if (head.readUInt32LE(0) !== LOCAL) throw new UserError(`${file}: zip entry '${name}': no local header at byte ${local}`);
    const dataOffset = local + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
    if (dataOffset + csize > size) throw new UserError(`${file}: zip entry '${name}' runs past the end of the file (truncated?)`);
    entries.set(name, { name, method, compressedSize: csize, size: usize, dataOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Bytes [start, start + length) of an entry's uncompressed data. */
export function readZipRange(fd: number, entry: ZipEntry, start: number, length: number, file: string): Uint8Array {
  if (start < 0 || start + length > entry.size) {
    throw new UserError(`${file}: bytes [${start}, ${start + length}) lie outside zip entry '${entry.name}' (${entry.size} bytes)`);
  }
  if (entry.method === 0) {
    const out = new Uint8Array(length);
    readAt(fd, out, entry.dataOffset + start, file);
    return out;
  }
  const packed = Buffer.alloc(entry.compressedSize);
  readAt(fd, packed, entry.dataOffset, file);
  let whole: Buffer;
  try {
    whole = zlib.inflateRawSync(packed);
  } catch (err) {
    throw new UserError(`${file}: zip entry '${entry.name}' does not inflate (${(err as Error).message})`, { cause: err });
  }
  if (whole.length !== entry.size) throw new UserError(`${file}: zip entry '${entry.name}' inflates to ${whole.length} bytes, the directory says ${entry.size}`);
  return new Uint8Array(whole.buffer, whole.byteOffset + start, length);
}
