import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, it, before, after } from 'node:test';
import { throwsUser, tmpDir } from '../helpers.js';
import {
  bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, f32ToF16Bits, openSafetensors, openSafetensorsDir, readSafetensors,
  writeSafetensors, MAX_HEADER_BYTES, type TensorToWrite,
} from '../../src/checkpoint/safetensors.js';

let dir: string;
before(() => {
  dir = tmpDir('st');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A file with a hand-made header (string, unpadded) and raw data bytes. */
function rawFile(name: string, header: string, data: Uint8Array | number, lengthOverride?: bigint): string {
  const file = path.join(dir, name);
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)]));
  return file;
}

function roundTrip(name: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>) {
  const file = path.join(dir, name);
  writeSafetensors(file, tensors, metadata);
  return { file, ...readSafetensors(file) };
}

void describe('safetensors round trips', () => {
  void it('F32, I32, I64, U8, I8 come back exactly with metadata', () => {
    const f32 = new Float32Array([1.5, -2.25, 3e-39, Infinity, -0, 123456.789]);
    const { tensors, metadata } = roundTrip('mixed.safetensors', {
      'a.weight': { dtype: 'F32', shape: [2, 3], data: f32 },
      'b.ids': { dtype: 'I32', shape: [3], data: new Int32Array([-2147483648, 0, 2147483647]) },
      'c.long': { dtype: 'I64', shape: [4], data: new Int32Array([-1, 5, -2147483648, 2147483647]) },
      'd.u8': { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
      'e.i8': { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) },
      'f.empty': { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      'g.scalar': { dtype: 'F32', shape: [], data: new Float32Array([7]) },
    }, { format: 'pt', step: '3' });
    assert.deepEqual(metadata, { format: 'pt', step: '3' });
    assert.deepEqual(tensors.get('a.weight')!.shape, [2, 3]);
    assert.deepEqual(tensors.get('a.weight')!.data, f32);
    assert.deepEqual([...tensors.get('b.ids')!.data], [-2147483648, 0, 2147483647]);
    assert.ok(tensors.get('c.long')!.data instanceof Int32Array);
    assert.deepEqual([...tensors.get('c.long')!.data], [-1, 5, -2147483648, 2147483647]);
    assert.deepEqual([...tensors.get('d.u8')!.data], [0, 255]);
    assert.deepEqual([...tensors.get('e.i8')!.data], [-128, 127]);
    assert.equal(tensors.get('f.empty')!.data.length, 0);
    assert.deepEqual([...tensors.get('g.scalar')!.data], [7]);
  });

  void it('F16 keeps representable values, Inf, NaN and subnormals', () => {
    const vals = new Float32Array([0, -0, 1, -2, 0.5, 65504, -65504, 2 ** -14, 2 ** -24, 3 * 2 ** -24, 1023 * 2 ** -24,
      Infinity, -Infinity, NaN, 1 + 2 ** -10]);
    const { tensors } = roundTrip('f16.safetensors', { x: { dtype: 'F16', shape: [vals.length], data: vals } });
    const got = tensors.get('x')!.data as Float32Array;
    assert.ok(got instanceof Float32Array);
    for (let i = 0; i < vals.length; i++) assert.ok(Object.is(got[i], vals[i]), `index ${i}: ${got[i]} vs ${vals[i]}`);
  });

  void it('BF16 keeps representable values, Inf and NaN', () => {
    const vals = new Float32Array([0, -0, 1, -3.5, 2 ** 100, 2 ** -130, 1 + 2 ** -7, Infinity, -Infinity, NaN]);
    const { tensors } = roundTrip('bf16.safetensors', { x: { dtype: 'BF16', shape: [2, 5], data: vals } });
    const got = tensors.get('x')!.data;
    for (let i = 0; i < vals.length; i++) assert.ok(Object.is(got[i], vals[i]), `index ${i}: ${got[i]} vs ${vals[i]}`);
  });

  void it('F16 and BF16 round to nearest, ties to even, and overflow to Inf', () => {
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01);
    assert.equal(f32ToF16Bits(65520), 0x7c00); // halfway to the next binade past 65504: Inf
    assert.equal(f32ToF16Bits(2 ** -25), 0); // tie with the smallest subnormal rounds to even 0
    assert.equal(f32ToF16Bits(2 ** -25 + 2 ** -35), 1);
    assert.deepEqual([...f16ToF32(f32ToF16(new Float32Array([0.1])))], [Math.fround(0.0999755859375)]);
    const bf = bf16ToF32(f32ToBf16(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1.1])));
    assert.deepEqual([...bf], [1, 1 + 2 ** -6, 1.1015625]);
  });

  void it('equal tensors give byte-identical files whatever the insertion order', () => {
    const a = { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } as const;
    const b = { dtype: 'BF16', shape: [1], data: new Float32Array([3]) } as const;
    const f1 = path.join(dir, 'one.safetensors');
    const f2 = path.join(dir, 'two.safetensors');
    writeSafetensors(f1, { 'z.b': b, '10': a, 'a.a': a }, { y: '1', x: '2' });
    writeSafetensors(f2, { 'a.a': a, 'z.b': b, '10': a }, { x: '2', y: '1' });
    const bytes = fs.readFileSync(f1);
    assert.ok(bytes.equals(fs.readFileSync(f2)));
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = bytes.subarray(8, 8 + n).toString('utf8');
    assert.equal(header.trimEnd().indexOf(' '), -1);
    assert.ok(header.indexOf('"10"') < header.indexOf('"a.a"') && header.indexOf('"a.a"') < header.indexOf('"z.b"'));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  });

  void it('streams one tensor at a time from the header listing', () => {
    const file = path.join(dir, 'stream.safetensors');
    writeSafetensors(file, {
      'w1': { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) },
      'w2': { dtype: 'F16', shape: [2], data: new Float32Array([4, 5]) },
    });
    const src = openSafetensors(file);
    assert.deepEqual([...src.tensors.keys()], ['w1', 'w2']);
    assert.deepEqual(src.tensors.get('w2'), { dtype: 'F16', shape: [2], begin: 12, end: 16 });
    assert.deepEqual([...src.read('w2').data], [4, 5]);
    throwsUser(() => src.read('nope'), 'stream.safetensors', "'nope'");
    src.close();
    assert.throws(() => src.read('w1'), /after close/);
  });

  void it('refuses an I64 value that does not fit in int32, naming the tensor', () => {
    const data = Buffer.alloc(16);
    data.writeBigInt64LE(1n, 0);
    data.writeBigInt64LE(1n << 40n, 8);
    const file = rawFile('i64.safetensors', '{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}', data);
    throwsUser(() => openSafetensors(file).read('ids'), 'i64.safetensors', "'ids'", String(1n << 40n));
  });
});

void describe('safetensors sharded directories', () => {
  function shardDir(name: string, index: object, shards: Record<string, Record<string, number[]>>): string {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    for (const [file, ts] of Object.entries(shards)) {
      const tensors: Record<string, TensorToWrite> = {};
      for (const [n, v] of Object.entries(ts)) tensors[n] = { dtype: 'F32', shape: [v.length], data: new Float32Array(v) };
      writeSafetensors(path.join(d, file), tensors, { format: 'pt' });
    }
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify(index));
    return d;
  }
  const shards = { 'model-00001-of-00002.safetensors': { a: [1, 2] }, 'model-00002-of-00002.safetensors': { b: [3], c: [4, 5, 6] } };
  const weightMap = { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' };

  void it('reads shards through the index as one lookup', () => {
    const src = openSafetensorsDir(shardDir('sharded', { metadata: { total_size: 24 }, weight_map: weightMap }, shards));
    assert.deepEqual([...src.tensors.keys()].sort(), ['a', 'b', 'c']);
    assert.deepEqual([...src.read('a').data], [1, 2]);
    assert.deepEqual([...src.read('c').data], [4, 5, 6]);
    src.close();
  });

  void it('prefers a single model.safetensors', () => {
    const d = path.join(dir, 'single');
    fs.mkdirSync(d);
    writeSafetensors(path.join(d, 'model.safetensors'), { x: { dtype: 'F32', shape: [1], data: new Float32Array([9]) } });
    const src = openSafetensorsDir(d);
    assert.deepEqual([...src.read('x').data], [9]);
    src.close();
  });

  void it('an index naming a missing shard is an error naming the shard and a tensor', () => {
    const d = shardDir('missing-shard', { weight_map: { ...weightMap, d: 'model-00003-of-00002.safetensors' } }, shards);
    throwsUser(() => openSafetensorsDir(d), 'model.safetensors.index.json', "'d'", 'model-00003-of-00002.safetensors', 'does not exist');
  });

  void it('an index naming a tensor absent from its shard is an error naming both', () => {
    const d = shardDir('absent', { weight_map: { ...weightMap, e: 'model-00001-of-00002.safetensors' } }, shards);
    throwsUser(() => openSafetensorsDir(d), "'e'", 'model-00001-of-00002.safetensors', 'no such tensor');
  });

  void it('a directory with neither file is an error naming it', () => {
    const d = path.join(dir, 'empty-dir');
    fs.mkdirSync(d);
    throwsUser(() => openSafetensorsDir(d), 'empty-dir', 'model.safetensors');
  });
});

void describe('safetensors corruption is a UserError naming the file and tensor', () => {
  const entry = (dtype: string, shape: number[], b: number, e: number) =>
    `{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${b},${e}]}`;

  void it('header length past the end of the file', () => {
    throwsUser(() => openSafetensors(rawFile('hdr-long.safetensors', '{}', 0, 4096n)), 'hdr-long.safetensors', 'header length 4096', 'truncated');
  });

  void it('header length over 100 MB', () => {
    throwsUser(() => openSafetensors(rawFile('hdr-huge.safetensors', '{}', 0, BigInt(MAX_HEADER_BYTES) + 1n)), 'hdr-huge.safetensors', 'limit');
  });

  void it('a file shorter than 8 bytes', () => {
    const f = path.join(dir, 'tiny.safetensors');
    fs.writeFileSync(f, Buffer.alloc(3));
    throwsUser(() => openSafetensors(f), 'tiny.safetensors', 'too short');
  });

  void it('bad JSON', () => {
    throwsUser(() => openSafetensors(rawFile('badjson.safetensors', '{"a":{"dtype":', 0)), 'badjson.safetensors', 'not valid JSON');
  });

  void it('duplicate names', () => {
    const h = `{"w":${entry('F32', [1], 0, 4)}, "w" : ${entry('F32', [1], 4, 8)}}`;
    throwsUser(() => openSafetensors(rawFile('dup.safetensors', h, 8)), 'dup.safetensors', "tensor 'w'", 'more than once');
  });

  void it('non-contiguous offsets (a gap and an overlap)', () => {
    const gap = `{"a":${entry('F32', [1], 0, 4)},"b":${entry('F32', [1], 8, 12)}}`;
    throwsUser(() => openSafetensors(rawFile('gap.safetensors', gap, 12)), 'gap.safetensors', "tensor 'b'", 'gap', "'a'");
    const overlap = `{"a":${entry('F32', [2], 0, 8)},"b":${entry('F32', [1], 4, 8)}}`;
    throwsUser(() => openSafetensors(rawFile('overlap.safetensors', overlap, 8)), 'overlap.safetensors', 'overlap');
    const late = `{"a":${entry('F32', [1], 4, 8)}}`;
    throwsUser(() => openSafetensors(rawFile('late.safetensors', late, 8)), 'late.safetensors', "tensor 'a'", 'expected begin 0');
  });

  void it('size not numel × dtype size', () => {
    const h = `{"model.layers.0.mlp.up_proj.weight":${entry('BF16', [2, 3], 0, 8)}}`;
    throwsUser(() => openSafetensors(rawFile('size.safetensors', h, 8)), 'size.safetensors',
      "tensor 'model.layers.0.mlp.up_proj.weight'", 'needs 12');
  });

  void it('truncated data', () => {
    const h = `{"a":${entry('F32', [2], 0, 8)},"model.layers.0.mlp.up_proj.weight":${entry('F32', [4], 8, 24)}}`;
    throwsUser(() => openSafetensors(rawFile('trunc.safetensors', h, 20)), 'trunc.safetensors',
      "tensor 'model.layers.0.mlp.up_proj.weight'", 'run past the end of the file', 'truncated');
  });

  void it('a real file cut short', () => {
    const f = path.join(dir, 'cut.safetensors');
    writeSafetensors(f, { a: { dtype: 'F32', shape: [4], data: new Float32Array(4) }, b: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    fs.truncateSync(f, fs.statSync(f).size - 1);
    throwsUser(() => openSafetensors(f), 'cut.safetensors', "tensor 'b'", 'truncated');
  });

  void it('trailing bytes', () => {
    const h = `{"a":${entry('F32', [1], 0, 4)}}`;
    throwsUser(() => openSafetensors(rawFile('trail.safetensors', h, 7)), 'trail.safetensors', '3 trailing bytes', "'a'");
  });

  void it('unknown dtype, and a known dtype the reader does not decode', () => {
    throwsUser(() => openSafetensors(rawFile('dtype.safetensors', `{"a":${entry('F128', [1], 0, 16)}}`, 16)),
      'dtype.safetensors', "tensor 'a'", 'unknown dtype "F128"');
    const src = openSafetensors(rawFile('f64.safetensors', `{"a":${entry('F64', [1], 0, 8)}}`, 8));
    throwsUser(() => src.read('a'), 'f64.safetensors', "tensor 'a'", 'F64 is not supported');
    src.close();
  });

  void it('bad shape, bad offsets and non-string metadata', () => {
    throwsUser(() => openSafetensors(rawFile('shape.safetensors', '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4)),
      'shape.safetensors', "tensor 'a'", 'shape');
    throwsUser(() => openSafetensors(rawFile('offs.safetensors', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4)),
      'offs.safetensors', "tensor 'a'", 'data_offsets');
    throwsUser(() => openSafetensors(rawFile('meta.safetensors', '{"__metadata__":{"n":1}}', 0)), 'meta.safetensors', '__metadata__');
  });

  void it('a missing file', () => {
    throwsUser(() => openSafetensors(path.join(dir, 'nope.safetensors')), 'nope.safetensors', 'ENOENT');
  });
});

void describe('safetensors cross-check with the Python reference', () => {
  const py = '/usr/bin/python3';
  let has = false;
  try {
    execFileSync(py, ['-c', 'import safetensors'], { stdio: 'ignore' });
    has = true;
  } catch {
    has = false;
  }
  void it('reads a file written by safetensors.numpy and writes one it reads', { skip: has ? false : 'python safetensors is not installed' }, () => {
    const theirs = path.join(dir, 'py.safetensors');
    const ours = path.join(dir, 'ours.safetensors');
    writeSafetensors(ours, { b: { dtype: 'F16', shape: [2], data: new Float32Array([0.5, -1]) }, a: { dtype: 'I32', shape: [1], data: new Int32Array([7]) } });
    const out = execFileSync(py, ['-c', `
import numpy as np, json
from safetensors.numpy import save_file, load_file
save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "h": np.array([1.5, -2], dtype=np.float16)}, ${JSON.stringify(theirs)})
t = load_file(${JSON.stringify(ours)})
print(json.dumps({k: v.tolist() for k, v in t.items()}))
`]).toString();
    assert.deepEqual(JSON.parse(out), { a: [7], b: [0.5, -1] });
    const { tensors } = readSafetensors(theirs);
    assert.deepEqual([...tensors.get('w')!.data], [0, 1, 2, 3, 4, 5]);
    assert.deepEqual([...tensors.get('h')!.data], [1.5, -2]);
  });
});

void describe('F16/BF16 rounding and the file layout against torch', () => {
  const py = '/usr/bin/python3';
  let has = false;
  try {
    execFileSync(py, ['-c', 'import torch, numpy'], { stdio: 'ignore' });
    has = true;
  } catch {
    has = false;
  }
  void it('a minimal Python parser reads our file and torch rounds every value as we do', { skip: has ? false : 'torch is not installed under /usr/bin/python3' }, () => {
    // Values over every F16 regime: subnormal, normal, near overflow, exact ties (k/2 ulps).
    const n = 4000;
    const x = new Float32Array(n);
    let s = 12345;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < n; i++) {
      const mag = 2 ** (Math.floor(rnd() * 50) - 30);
      x[i] = (rnd() < 0.5 ? -1 : 1) * (i % 4 === 0 ? Math.round(rnd() * 4096) * 2 ** -23 * 2 ** Math.floor(rnd() * 20) : rnd() * mag);
    }
    const file = path.join(dir, 'torch.safetensors');
    writeSafetensors(file, {
      x: { dtype: 'F32', shape: [n], data: x },
      xh: { dtype: 'F16', shape: [n], data: x },
      xb: { dtype: 'BF16', shape: [n], data: x },
    });
    const out = execFileSync(py, ['-c', `
import json, struct, sys, numpy as np, torch
raw = open(${JSON.stringify(file)}, 'rb').read()
n, = struct.unpack('<Q', raw[:8])
h = json.loads(raw[8:8 + n])
data = raw[8 + n:]
def arr(name, dt):
    b, e = h[name]['data_offsets']
    return np.frombuffer(data[b:e], dtype=dt)
x = torch.from_numpy(arr('x', np.float32).copy())
h16 = torch.from_numpy(arr('xh', np.int16).copy())
b16 = torch.from_numpy(arr('xb', np.int16).copy())
print(json.dumps({
  'f16_mismatch': int((x.half().view(torch.int16) != h16).sum()),
  'bf16_mismatch': int((x.bfloat16().view(torch.int16) != b16).sum()),
  'last_end': h['xh']['data_offsets'][1], 'size': len(data),
}))
`]).toString();
    const r = JSON.parse(out) as { f16_mismatch: number; bf16_mismatch: number; last_end: number; size: number };
    assert.equal(r.last_end, r.size);
    assert.equal(r.f16_mismatch, 0);
    assert.equal(r.bf16_mismatch, 0);
  });
});
