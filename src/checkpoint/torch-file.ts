// torch.save files (`pytorch_model.bin`, `adapter_model.bin`, `.pt`, `.pth`) as a SafetensorsSource
// (docs/models.md#pytorch-bin-and-pt-files), so every loader's strict tensor-set check applies
// unchanged. Since torch 1.6 torch.save writes a zip: `<archive>/data.pkl` (the pickled object, in
// which each tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` and each
// storage a persistent id `('storage', torch.FloatStorage, key, location, numel)`), the raw
// little-endian storages in `<archive>/data/<key>`, and `version` / `byteorder` records
// (torch/serialization.py). Opening unpickles data.pkl with an allow-list of exactly the names torch
// uses for tensors (pickle.ts never runs code) and locates every tensor; a tensor is read when asked
// for, materialising views (strides, offsets, shared storages) into contiguous row-major data.
import fs from 'node:fs';
import { UserError } from '../errors.js';
import { childLog } from '../log.js';
import { READABLE_DTYPES, bf16ToF32, f16ToF32, type SafetensorsDtype } from './dtypes.js';
import { PyDict, PyGlobal, PyObject, PyTuple, typeName, unpickle } from './pickle.js';
import { openWeightsFd, type LoadedTensor, type SafetensorsSource, type TensorData, type TensorInfo } from './safetensors-read.js';
import { readAt, readZipDirectory, readZipRange, type ZipEntry } from './zip.js';

const log = childLog('checkpoint');

/** How to turn any torch file into safetensors, for every refusal below. */
const CONVERT_HINT =
  'convert it with PyTorch:\n' +
  '  import torch; from safetensors.torch import save_file\n' +
  '  sd = torch.load("IN.pt", map_location="cpu", weights_only=True)\n' +
  '  save_file({k: v.contiguous() for k, v in sd.items()}, "model.safetensors")';

/** Legacy storage classes (what torch.save still names in persistent ids) and torch dtypes -> dtype. */
const STORAGES: Readonly<Record<string, SafetensorsDtype>> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL', UntypedStorage: 'U8',
};
const DTYPES: Readonly<Record<string, SafetensorsDtype>> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64', int32: 'I32', int16: 'I16',
  int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const ELEM_BYTES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

class Storage {
  constructor(readonly key: string, readonly dtype: SafetensorsDtype, readonly entry: ZipEntry) {}
}

class TensorRef {
  constructor(
    readonly storage: Storage, readonly dtype: SafetensorsDtype, readonly offset: number,
    readonly shape: readonly number[], readonly stride: readonly number[],
  ) {}
}

function ints(v: unknown, what: string, file: string): number[] {
  if (!(v instanceof PyTuple) || !v.items.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw new UserError(`${file}: a tensor's ${what} is ${typeName(v)}, not a tuple of non-negative ints`);
  }
  return v.items as number[];
}

function rebuildTensor(file: string, args: readonly unknown[], dtype?: SafetensorsDtype): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof Storage) || typeof offset !== 'number') throw new UserError(`${file}: _rebuild_tensor with a ${typeName(storage)} storage`);
  const shape = ints(size, 'size', file);
  const strides = ints(stride, 'stride', file);
  if (strides.length !== shape.length) throw new UserError(`${file}: a tensor's size [${shape.join(', ')}] and stride [${strides.join(', ')}] differ in rank`);
  const t = new TensorRef(storage, dtype ?? storage.dtype, offset, shape, strides);
  const bytes = ELEM_BYTES[t.dtype]!;
  const last = shape.some((d) => d === 0) ? offset : offset + shape.reduce((a, d, i) => a + (d - 1) * strides[i]!, 0);
  if ((last + 1) * bytes > storage.entry.size) {
    throw new UserError(`${file}: a tensor of size [${shape.join(', ')}] at offset ${offset} runs past its storage '${storage.key}' (${storage.entry.size} bytes)`);
  }
  return t;
}

/** The names torch pickles for a state dict of tensors (torch.serialization's weights_only allow-list, reduced). */
function torchGlobals(file: string): Map<string, ((args: readonly unknown[]) => unknown) | null> {
  const g = new Map<string, ((args: readonly unknown[]) => unknown) | null>();
  g.set('collections.OrderedDict', () => new PyDict('collections.OrderedDict'));
  g.set('torch._utils._rebuild_tensor_v2', (a) => rebuildTensor(file, a));
  g.set('torch._utils._rebuild_tensor_v3', (a) => {
    const d = a[6];
    const dtype = d instanceof PyGlobal ? DTYPES[d.qualname.replace(/^torch\./, '')] : undefined;
    if (!dtype) throw new UserError(`${file}: _rebuild_tensor_v3 with dtype ${typeName(d)}`);
    return rebuildTensor(file, a, dtype);
  });
  // nn.Parameter: the tensor itself (requires_grad and hooks mean nothing here).
  const param = (a: readonly unknown[]): unknown => {
    if (!(a[0] instanceof TensorRef)) throw new UserError(`${file}: _rebuild_parameter of a ${typeName(a[0])}`);
    return a[0];
  };
  g.set('torch._utils._rebuild_parameter', param);
  g.set('torch._utils._rebuild_parameter_with_state', param);
  for (const s of Object.keys(STORAGES)) g.set(`torch.${s}`, null);
  for (const d of Object.keys(DTYPES)) g.set(`torch.${d}`, null);
  // Plain data around the weights in training checkpoints: bytes under protocol 2, sets, and
  // argparse.Namespace (facebookresearch/DiT's train.py saves its `args`); none runs code.
  g.set('_codecs.encode', (a) => (typeof a[0] === 'string' ? Uint8Array.from(a[0], (c) => c.charCodeAt(0) & 0xff) : new Uint8Array()));
  g.set('builtins.set', (a) => {
    const s = new PyDict('set');
    if (Array.isArray(a[0])) for (const x of a[0]) s.map.set(x, true);
    return s;
  });
  g.set('builtins.bytearray', (a) => (a[0] instanceof Uint8Array ? a[0] : new Uint8Array()));
  g.set('argparse.Namespace', (a) => new PyObject('argparse.Namespace', a));
  return g;
}

function isTensorDict(v: unknown): v is PyDict {
  return v instanceof PyDict && [...v.map.values()].every((x) => x instanceof TensorRef);
}

/** The state dict inside what torch.save saved: the object itself, or a training checkpoint's `ema`, `model` or `state_dict`. */
function stateDict(file: string, obj: unknown): Map<string, TensorRef> {
  let sd = obj;
  if (!isTensorDict(obj) && obj instanceof PyDict) {
    // DiT's train.py saves {model, ema, opt, args}: the EMA weights are the ones it samples with.
    const key = ['ema', 'model', 'state_dict'].find((k) => isTensorDict(obj.map.get(k)));
    if (key !== undefined) {
      const others = [...obj.map.keys()].filter((k) => k !== key).map(String);
      log.info({ file, key, others }, `${file}: a training checkpoint; loading its '${key}' state dict`);
      sd = obj.map.get(key);
    }
  }
  if (!(sd instanceof PyDict)) throw new UserError(`${file}: holds a ${typeName(sd)}, not a state dict (a dict of tensors); ${CONVERT_HINT}`);
  const out = new Map<string, TensorRef>();
  for (const [k, v] of sd.map) {
    if (typeof k !== 'string') throw new UserError(`${file}: a state-dict key is a ${typeName(k)}, not a string`);
    if (!(v instanceof TensorRef)) {
      const keys = [...sd.map.keys()].slice(0, 8).map(String).join(', ');
      throw new UserError(`${file}: '${k}' holds a ${typeName(v)}, not a tensor (keys: ${keys}); a state dict of tensors is needed (for a training checkpoint: its 'ema', 'model' or 'state_dict'); ${CONVERT_HINT}`);
    }
    out.set(k, v);
  }
  return out;
}

/** Says what a non-zip file is (the legacy format, a plain pickle, safetensors) and how to convert it. */
function refuseNonZip(file: string, head: Buffer): never {
  // Legacy torch.save (before 1.6, or _use_new_zipfile_serialization=False) starts with the pickled magic number 0x1950a86a20f9469cfc6c.
  const legacy = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
  if (head.subarray(0, legacy.length).equals(legacy)) {
    throw new UserError(`${file}: the legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a current PyTorch (torch.save(torch.load(f), f)) or ${CONVERT_HINT}`);
  }
  if (head[0] === 0x80) throw new UserError(`${file}: a plain pickle, not a torch.save archive (no zip); ${CONVERT_HINT}`);
  if (head.length >= 9 && head[8] === 0x7b) throw new UserError(`${file}: looks like a safetensors file; name it *.safetensors (e.g. model.safetensors)`);
  throw new UserError(`${file}: neither a torch.save zip archive nor safetensors (first bytes ${head.subarray(0, 8).toString('hex')})`);
}

function decodeBytes(dtype: SafetensorsDtype, raw: Uint8Array, file: string, name: string): TensorData {
  const aligned = raw.byteOffset % 8 === 0 ? raw : raw.slice();
  const n = aligned.length / ELEM_BYTES[dtype]!;
  switch (dtype) {
    case 'F32': return new Float32Array(aligned.buffer, aligned.byteOffset, n).slice();
    case 'F16': return f16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, n));
    case 'BF16': return bf16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, n));
    case 'I32': return new Int32Array(aligned.buffer, aligned.byteOffset, n).slice();
    case 'I64': {
      // (lo, hi) int32 pairs; a value fits in int32 exactly when hi is lo's sign extension (as safetensors-read.ts).
      const pairs = new Int32Array(aligned.buffer, aligned.byteOffset, 2 * n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        if (pairs[2 * i + 1] !== pairs[2 * i]! >> 31) throw new UserError(`${file}: tensor '${name}': I64 value at index ${i} does not fit in int32`);
        out[i] = pairs[2 * i]!;
      }
      return out;
    }
    case 'U8': return aligned.slice();
    case 'I8': return new Int8Array(aligned.buffer, aligned.byteOffset, n).slice();
    default: throw new UserError(`${file}: tensor '${name}': dtype ${dtype} is not supported (readable: ${READABLE_DTYPES.join(', ')})`);
  }
}

/** Bytes of `t` in row-major order: one read when contiguous, else a read of its span and a gather. */
function materialise(fd: number, file: string, t: TensorRef): Uint8Array {
  const es = ELEM_BYTES[t.dtype]!;
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (numel === 0) return new Uint8Array(0);
  let contiguous = true;
  for (let i = t.shape.length - 1, want = 1; i >= 0; i--) {
    if (t.shape[i]! !== 1 && t.stride[i]! !== want) contiguous = false;
    want *= t.shape[i]!;
  }
  if (contiguous) return readZipRange(fd, t.storage.entry, t.offset * es, numel * es, file);
  const span = t.shape.reduce((a, d, i) => a + (d - 1) * t.stride[i]!, 0) + 1;
  const src = readZipRange(fd, t.storage.entry, t.offset * es, span * es, file);
  const out = new Uint8Array(numel * es);
  const idx = new Array<number>(t.shape.length).fill(0);
  let at = 0;
  for (let k = 0; k < numel; k++) {
    out.set(src.subarray(at * es, at * es + es), k * es);
    // Odometer over the index, last dimension fastest; `at` follows it through the strides.
    for (let d = t.shape.length - 1; d >= 0; d--) {
      idx[d]!++;
      at += t.stride[d]!;
      if (idx[d]! < t.shape[d]!) break;
      at -= idx[d]! * t.stride[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** Opens a torch.save file; refuses (naming what it found, and how to convert) anything but a state dict of tensors. */
export function openTorchFile(file: string): SafetensorsSource {
  const fd = openWeightsFd(file);
  try {
    const head = Buffer.alloc(Math.min(16, fs.fstatSync(fd).size));
    readAt(fd, head, 0, file);
    if (head.length < 4 || head.readUInt32LE(0) !== 0x04034b50) refuseNonZip(file, head);
    const entries = readZipDirectory(fd, file);
    const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    const isScript = [...entries.keys()].some((n) => /^[^/]+\/(constants\.pkl|code\/)/.test(n));
    if (isScript) throw new UserError(`${file}: a TorchScript archive (torch.jit.save), not a state dict; save model.state_dict() with torch.save, or ${CONVERT_HINT}`);
    if (pkls.length !== 1) throw new UserError(`${file}: a zip, but not a torch.save archive (${pkls.length} '<archive>/data.pkl' entries)`);
    const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
    const order = entries.get(`${prefix}byteorder`);
    const byteorder = order ? Buffer.from(readZipRange(fd, order, 0, order.size, file)).toString('latin1').trim() : 'little';
    if (byteorder !== 'little') throw new UserError(`${file}: saved on a ${byteorder}-endian machine; only little-endian storages are read (re-save it on x86/arm64, or ${CONVERT_HINT})`);
    const pklEntry = entries.get(pkls[0]!)!;
    const storages = new Map<string, Storage>();
    const obj = unpickle(readZipRange(fd, pklEntry, 0, pklEntry.size, file), {
      source: file,
      globals: torchGlobals(file),
      persistentLoad: (pid) => {
        const [tag, type, key] = pid instanceof PyTuple ? pid.items : [];
        const dtype = type instanceof PyGlobal ? STORAGES[type.qualname.replace(/^torch\./, '')] : undefined;
        if (tag !== 'storage' || typeof key !== 'string' || dtype === undefined) throw new UserError(`${file}: a persistent id that is not a tensor storage (${typeName(pid)})`);
        const entry = entries.get(`${prefix}data/${key}`);
        if (!entry) throw new UserError(`${file}: storage '${key}' is referenced, but '${prefix}data/${key}' is not in the archive`);
        let s = storages.get(key);
        if (!s) storages.set(key, (s = new Storage(key, dtype, entry)));
        return s;
      },
    });
    const refs = stateDict(file, obj);
    const tensors = new Map<string, TensorInfo>();
    for (const [name, t] of refs) {
      const es = ELEM_BYTES[t.dtype]!;
      const numel = t.shape.reduce((a, b) => a * b, 1);
      // begin/end: the tensor's bytes within its storage (informational: torch files have no data section).
      tensors.set(name, { dtype: t.dtype, shape: Object.freeze([...t.shape]), begin: t.offset * es, end: (t.offset + numel) * es });
    }
    let open = true;
    return {
      file,
      metadata: Object.freeze({ format: 'pt' }),
      tensors,
      read(name: string): LoadedTensor {
        if (!open) throw new Error(`${file}: read('${name}') after close()`);
        const t = refs.get(name);
        if (!t) throw new UserError(`${file}: tensor '${name}': no such tensor in the file`);
        return { dtype: t.dtype, shape: t.shape, data: decodeBytes(t.dtype, materialise(fd, file, t), file, name) };
      },
      close(): void {
        if (open) fs.closeSync(fd);
        open = false;
      },
    };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}
