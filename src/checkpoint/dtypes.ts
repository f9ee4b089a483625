// safetensors dtypes and the float conversions between float32 and the 16-bit formats.
// F16 is IEEE 754 binary16; BF16 is the top half of a float32. Both conversions from float32 round
// to nearest, ties to even (what torch's `.half()` / `.bfloat16()` do), keep ±Inf, keep NaN quiet,
// and F16 produces subnormals rather than flushing them to zero. Typed-array views assume a
// little-endian host (x86, arm64), which is also the byte order of safetensors data.
import os from 'node:os';

/** Every dtype name the safetensors format defines, with its size in bytes. */
export const DTYPE_BYTES = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
} as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** The dtypes this reader turns into typed arrays (others are listed but refused on read). */
export const READABLE_DTYPES = ['F32', 'F16', 'BF16', 'I32', 'I64', 'U8', 'I8'] as const;
export type ReadableDtype = (typeof READABLE_DTYPES)[number];

/** The dtypes the writer produces. */
export type WritableDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8' | 'I8';

export function isDtype(s: string): s is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

export function isReadable(d: SafetensorsDtype): d is ReadableDtype {
  return (READABLE_DTYPES as readonly string[]).includes(d);
}

/** Throws on a big-endian host, where the typed-array views below would byte-swap every value. */
export function assertLittleEndian(): void {
  if (os.endianness() !== 'LE') throw new Error('safetensors I/O needs a little-endian host');
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 value -> binary16 bits, round to nearest even. */
export function f32ToF16Bits(v: number): number {
  scratchF32[0] = v;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value = half · 2^-24, so half = (1.mant · 2^23) >> (14 - e).
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the right answer (up to Inf).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

let f16Table: Uint32Array | null = null;

/** float32 bit patterns of all 65,536 halves (256 KiB, built on first use). */
function halfTable(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const e = (h >>> 10) & 0x1f;
    let m = h & 0x3ff;
    if (e === 0x1f) t[h] = sign | 0x7f800000 | (m << 13);
    else if (e !== 0) t[h] = sign | ((e - 15 + 127) << 23) | (m << 13);
    else if (m === 0) t[h] = sign;
    else {
      // Normalize the subnormal: shift the mantissa up until its leading 1 is implicit.
      let exp = 127 - 14;
      while ((m & 0x400) === 0) {
        m <<= 1;
        exp--;
      }
      t[h] = sign | (exp << 23) | ((m & 0x3ff) << 13);
    }
  }
  f16Table = t;
  return t;
}

export function f32ToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]!);
  return out;
}

export function f32ToBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = u[i]!;
    out[i] =
      (x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0
        ? ((x >>> 16) | 0x40) & 0xffff
        : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** binary16 bits -> float32, exact (bit patterns copied, so NaN payloads survive). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const t = halfTable();
  const out = new Float32Array(src.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) u[i] = t[src[i]!]!;
  return out;
}

/** bfloat16 bits -> float32, exact. */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  return out;
}
