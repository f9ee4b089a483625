// Dataset schemas (docs/architecture.md#datasets), record batches built straight from typed arrays, typed views of a
// batch's columns, and Arrow IPC bytes for shipping micro-batches between processes.
//   LM:     input_ids List<Int32> (BOS first), labels List<Int32> (unshifted, prompt = -100), length Int32
//   image:  image FixedSizeList<Uint8>[H*W*3] (HWC), label Int32; metadata onelora.height/width/classes
//   latent: latent FixedSizeList<Float32>[prod(shape)], label Int32; metadata onelora.latent_shape
//   depth:  image FixedSizeList<Uint8>[H*W*3], depth FixedSizeList<Float32>[H*W] (metres), valid
//           FixedSizeList<Uint8>[H*W] (1 = measured), label Int32 (0); metadata onelora.height/width/depth_format
import {
  Field, FixedSizeList, Float32, Int32, List, RecordBatch, Schema, Struct, Uint8, makeData,
  tableFromIPC, tableToIPC, Table, type Data, type DataType,
} from 'apache-arrow';

const META = {
  tokenizer: 'onelora.tokenizer',
  height: 'onelora.height',
  width: 'onelora.width',
  classes: 'onelora.classes',
  latentShape: 'onelora.latent_shape',
  depthFormat: 'onelora.depth_format',
} as const;

export type DatasetKind = 'lm' | 'image' | 'latent' | 'depth';

const int32 = (): Int32 => new Int32();
const listOf = (t: DataType): List => new List(new Field('item', t, false));

export function lmSchema(tokenizer: string): Schema {
  return new Schema(
    [new Field('input_ids', listOf(int32()), false), new Field('labels', listOf(int32()), false), new Field('length', int32(), false)],
    new Map([[META.tokenizer, tokenizer]]),
  );
}

export function imageSchema(height: number, width: number, classes: string[]): Schema {
  const image = new FixedSizeList(height * width * 3, new Field('item', new Uint8(), false));
  return new Schema([new Field('image', image, false), new Field('label', int32(), false)], new Map([
    [META.height, String(height)],
    [META.width, String(width)],
    [META.classes, JSON.stringify(classes)],
  ]));
}

export function latentSchema(shape: number[], classes: string[]): Schema {
  const size = shape.reduce((a, b) => a * b, 1);
  const latent = new FixedSizeList(size, new Field('item', new Float32(), false));
  return new Schema([new Field('latent', latent, false), new Field('label', int32(), false)], new Map([
    [META.latentShape, JSON.stringify(shape)],
    [META.classes, JSON.stringify(classes)],
  ]));
}

/** Depth rows (src/data/depth-prepare.ts): `format` (nyu, kitti, diode) picks the evaluation crop and depth caps. */
export function depthSchema(height: number, width: number, format: string): Schema {
  const fsl = (n: number, t: DataType): FixedSizeList => new FixedSizeList(n, new Field('item', t, false));
  return new Schema([
    new Field('image', fsl(height * width * 3, new Uint8()), false),
    new Field('depth', fsl(height * width, new Float32()), false),
    new Field('valid', fsl(height * width, new Uint8()), false),
    new Field('label', int32(), false),
  ], new Map([[META.height, String(height)], [META.width, String(width)], [META.depthFormat, format]]));
}

export interface SchemaInfo {
  kind: DatasetKind;
  depthFormat?: string;
  tokenizer?: string;
  height?: number;
  width?: number;
  latentShape?: number[];
  classes?: string[];
}

function typeIs(schema: Schema, name: string, expect: (t: DataType) => boolean): boolean {
  const f = schema.fields.find((x) => x.name === name);
  return f !== undefined && expect(f.type);
}

const isInt32 = (t: DataType): boolean => t instanceof Int32 || String(t) === 'Int32';
const isListInt32 = (t: DataType): boolean => t instanceof List && isInt32(t.children[0]!.type);

function fixedOf(t: DataType, child: (c: DataType) => boolean): number | undefined {
  return t instanceof FixedSizeList && child(t.children[0]!.type) ? t.listSize : undefined;
}

function jsonMeta<T>(schema: Schema, key: string, check: (v: unknown) => v is T): T | undefined {
  const raw = schema.metadata.get(key);
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new Error(`schema metadata ${key} is not JSON: ${raw}`);
  }
  if (!check(v)) throw new Error(`schema metadata ${key} has the wrong form: ${raw}`);
  return v;
}
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isInts = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x > 0);

/** Which of the three schemas this is, with its metadata; throws an Error naming what is wrong. */
export function describeSchema(schema: Schema): SchemaInfo {
  const names = schema.fields.map((f) => f.name).join(', ');
  if (schema.fields.some((f) => f.name === 'input_ids')) {
    if (!typeIs(schema, 'input_ids', isListInt32) || !typeIs(schema, 'labels', isListInt32) || !typeIs(schema, 'length', isInt32)) {
      throw new Error(`LM schema needs input_ids: List<Int32>, labels: List<Int32>, length: Int32; found ${schema.fields.map(String).join(', ')}`);
    }
    const tokenizer = schema.metadata.get(META.tokenizer);
    return tokenizer === undefined ? { kind: 'lm' } : { kind: 'lm', tokenizer };
  }
  if (!schema.fields.some((f) => f.name === 'image' || f.name === 'latent')) throw new Error(`not a onelora dataset schema (columns: ${names})`);
  const classes = jsonMeta(schema, META.classes, isStrings);
  if (!typeIs(schema, 'label', isInt32)) throw new Error(`no label: Int32 column (columns: ${names})`);
  const image = schema.fields.find((f) => f.name === 'image');
  const depthFormat = schema.metadata.get(META.depthFormat);
  if (image && depthFormat !== undefined) {
    const height = Number(schema.metadata.get(META.height));
    const width = Number(schema.metadata.get(META.width));
    const ok = (name: string, n: number, c: (t: DataType) => boolean): boolean => typeIs(schema, name, (t) => fixedOf(t, c) === n);
    const u8 = (c: DataType): boolean => c instanceof Uint8 || String(c) === 'Uint8';
    if (!(height > 0 && width > 0) || !ok('image', height * width * 3, u8) || !ok('valid', height * width, u8) || !ok('depth', height * width, (c) => c instanceof Float32 || String(c) === 'Float32')) {
      throw new Error(`depth schema needs image [${height}·${width}·3] Uint8, depth [H·W] Float32 and valid [H·W] Uint8 (columns: ${names})`);
    }
    return { kind: 'depth', height, width, depthFormat };
  }
  if (image) {
    const size = fixedOf(image.type, (c) => c instanceof Uint8 || String(c) === 'Uint8');
    const height = Number(schema.metadata.get(META.height));
    const width = Number(schema.metadata.get(META.width));
    if (size === undefined) throw new Error(`image column must be FixedSizeList<Uint8>, found ${String(image.type)}`);
    if (!(height > 0 && width > 0) || size !== height * width * 3) {
      throw new Error(`image metadata ${META.height}=${schema.metadata.get(META.height)} ${META.width}=${schema.metadata.get(META.width)} does not match ${size} bytes per image`);
    }
    return { kind: 'image', height, width, classes: classes ?? [] };
  }
  const latent = schema.fields.find((f) => f.name === 'latent');
  if (latent) {
    const size = fixedOf(latent.type, (c) => c instanceof Float32 || String(c) === 'Float32');
    const shape = jsonMeta(schema, META.latentShape, isInts);
    if (size === undefined) throw new Error(`latent column must be FixedSizeList<Float32>, found ${String(latent.type)}`);
    if (!shape || shape.reduce((a, b) => a * b, 1) !== size) throw new Error(`${META.latentShape} missing or not matching ${size} floats per latent`);
    return { kind: 'latent', latentShape: shape, classes: classes ?? [] };
  }
  throw new Error(`not a onelora dataset schema (columns: ${names})`);
}

function batchOf(schema: Schema, length: number, children: Data[]): RecordBatch {
  const struct = makeData({ type: new Struct(schema.fields), length, nullCount: 0, children });
  return new RecordBatch(schema, struct);
}

function int32Data(values: Int32Array): Data<Int32> {
  return makeData({ type: int32(), length: values.length, nullCount: 0, data: values });
}

function listData(type: DataType, rows: ArrayLike<number>[]): Data {
  const offsets = new Int32Array(rows.length + 1);
  for (let i = 0; i < rows.length; i++) offsets[i + 1] = offsets[i]! + rows[i]!.length;
  const values = new Int32Array(offsets[rows.length]!);
  for (let i = 0; i < rows.length; i++) values.set(rows[i]!, offsets[i]!);
  return makeData({ type: type as List<Int32>, length: rows.length, nullCount: 0, valueOffsets: offsets, child: int32Data(values) });
}

export interface LmRow {
  inputIds: ArrayLike<number>;
  labels: ArrayLike<number>;
}

export function lmBatch(schema: Schema, rows: LmRow[]): RecordBatch {
  const f = schema.fields;
  const lengths = Int32Array.from(rows, (r) => r.inputIds.length);
  return batchOf(schema, rows.length, [
    listData(f[0]!.type, rows.map((r) => r.inputIds)),
    listData(f[1]!.type, rows.map((r) => r.labels)),
    int32Data(lengths),
  ]);
}

/** Image or latent rows: `values` holds the rows back to back (N × row size), `labels` one per row. */
export function fixedBatch(schema: Schema, values: Uint8Array | Float32Array, labels: Int32Array): RecordBatch {
  const type = schema.fields[0]!.type as FixedSizeList;
  if (values.length !== labels.length * type.listSize) throw new Error(`expected ${labels.length} × ${type.listSize} values, got ${values.length}`);
  const child = makeData({ type: type.children[0]!.type as Uint8, length: values.length, nullCount: 0, data: values as Uint8Array });
  const column = makeData({ type, length: labels.length, nullCount: 0, child });
  return batchOf(schema, labels.length, [column, int32Data(labels)]);
}

function column(batch: RecordBatch, name: string): Data {
  const v = batch.getChild(name);
  if (!v || v.data.length !== 1) throw new Error(`batch has no single-chunk column ${name}`);
  return v.data[0]!;
}

export interface LmColumns {
  inputIds: Int32Array[];
  labels: Int32Array[];
  lengths: Int32Array;
}

/** Zero-copy views of an LM batch's rows. Arrow JS slices keep `values`/`valueOffsets` already offset, so `Data.offset` is not added again. */
export function readLm(batch: RecordBatch): LmColumns {
  const view = (d: Data): Int32Array[] => {
    const off = d.valueOffsets as Int32Array;
    const vals = d.children[0]!.values as Int32Array;
    return Array.from({ length: d.length }, (_, i) => vals.subarray(off[i]!, off[i + 1]!));
  };
  const len = column(batch, 'length');
  return {
    inputIds: view(column(batch, 'input_ids')),
    labels: view(column(batch, 'labels')),
    lengths: (len.values as Int32Array).subarray(0, len.length),
  };
}

/** Zero-copy view of an image or latent batch: rows back to back, and their labels. */
export function readFixed<T extends Uint8Array | Float32Array>(batch: RecordBatch, name: 'image' | 'latent'): { values: T; labels: Int32Array; rowSize: number } {
  const d = column(batch, name);
  const rowSize = (d.type as FixedSizeList).listSize;
  const child = d.children[0]!;
  const lab = column(batch, 'label');
  return {
    values: (child.values as T).subarray(0, d.length * rowSize) as T,
    labels: (lab.values as Int32Array).subarray(0, lab.length),
    rowSize,
  };
}

/** Depth rows: every column but the label is a FixedSizeList, `columns` holds each back to back. */
export function depthBatch(schema: Schema, columns: { image: Uint8Array; depth: Float32Array; valid: Uint8Array }, n: number): RecordBatch {
  const [img, dep, val] = schema.fields.map((f) => f.type as FixedSizeList);
  const data = (type: FixedSizeList, values: Uint8Array | Float32Array): Data => {
    if (values.length !== n * type.listSize) throw new Error(`expected ${n} × ${type.listSize} values, got ${values.length}`);
    return makeData({ type, length: n, nullCount: 0, child: makeData({ type: type.children[0]!.type as Uint8, length: values.length, nullCount: 0, data: values as Uint8Array }) });
  };
  return batchOf(schema, n, [data(img!, columns.image), data(dep!, columns.depth), data(val!, columns.valid), int32Data(new Int32Array(n))]);
}

/** Zero-copy views of a depth batch's rows, back to back. */
export function readDepth(batch: RecordBatch): { image: Uint8Array; depth: Float32Array; valid: Uint8Array } {
  const view = <T extends Uint8Array | Float32Array>(name: string): T => {
    const d = column(batch, name);
    return (d.children[0]!.values as T).subarray(0, d.length * (d.type as FixedSizeList).listSize) as T;
  };
  return { image: view('image'), depth: view('depth'), valid: view('valid') };
}

function takeDepthRows(batch: RecordBatch, idx: number[]): RecordBatch {
  const c = readDepth(batch);
  const pick = <T extends Uint8Array | Float32Array>(v: T, make: (n: number) => T): T => {
    const size = v.length / batch.numRows;
    const out = make(idx.length * size);
    idx.forEach((r, k) => out.set(v.subarray(r * size, (r + 1) * size), k * size));
    return out;
  };
  return depthBatch(batch.schema, { image: pick(c.image, (n) => new Uint8Array(n)), depth: pick(c.depth, (n) => new Float32Array(n)), valid: pick(c.valid, (n) => new Uint8Array(n)) }, idx.length);
}

export function emptyBatch(schema: Schema): RecordBatch {
  const info = describeSchema(schema);
  if (info.kind === 'lm') return lmBatch(schema, []);
  if (info.kind === 'depth') return depthBatch(schema, { image: new Uint8Array(0), depth: new Float32Array(0), valid: new Uint8Array(0) }, 0);
  return fixedBatch(schema, info.kind === 'image' ? new Uint8Array(0) : new Float32Array(0), new Int32Array(0));
}

/** A new batch (same schema) holding `rows` of `batch`, in that order. */
export function takeRows(batch: RecordBatch, rows: ArrayLike<number>): RecordBatch {
  const info = describeSchema(batch.schema);
  const idx = Array.from(rows);
  if (info.kind === 'lm') {
    // Row views built only for the rows taken (a batch holds hundreds).
    const view = (name: string) => {
      const d = column(batch, name);
      const off = d.valueOffsets as Int32Array;
      const vals = d.children[0]!.values as Int32Array;
      return (i: number): Int32Array => vals.subarray(off[i]!, off[i + 1]!);
    };
    const ids = view('input_ids');
    const labels = view('labels');
    return lmBatch(batch.schema, idx.map((i) => ({ inputIds: ids(i), labels: labels(i) })));
  }
  if (info.kind === 'depth') return takeDepthRows(batch, idx);
  const name = info.kind === 'image' ? 'image' : 'latent';
  const c = readFixed(batch, name);
  const out = info.kind === 'image' ? new Uint8Array(idx.length * c.rowSize) : new Float32Array(idx.length * c.rowSize);
  idx.forEach((r, k) => out.set(c.values.subarray(r * c.rowSize, (r + 1) * c.rowSize), k * c.rowSize));
  return fixedBatch(batch.schema, out, Int32Array.from(idx, (r) => c.labels[r]!));
}

/** Concatenates batches of one schema into one batch. */
export function concatBatches(schema: Schema, batches: RecordBatch[]): RecordBatch {
  if (batches.length === 1) return batches[0]!;
  const all: { b: RecordBatch; i: number }[] = [];
  for (const b of batches) for (let i = 0; i < b.numRows; i++) all.push({ b, i });
  if (batches.length === 0) return emptyBatch(schema);
  const info = describeSchema(schema);
  if (info.kind === 'lm') {
    const cols = new Map(batches.map((b) => [b, readLm(b)]));
    return lmBatch(schema, all.map(({ b, i }) => ({ inputIds: cols.get(b)!.inputIds[i]!, labels: cols.get(b)!.labels[i]! })));
  }
  if (info.kind === 'depth') {
    const cols = batches.map(readDepth);
    const cat = <T extends Uint8Array | Float32Array>(parts: T[], make: (n: number) => T): T => {
      const out = make(parts.reduce((a, p) => a + p.length, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      return out;
    };
    return depthBatch(schema, {
      image: cat(cols.map((c) => c.image), (n) => new Uint8Array(n)), depth: cat(cols.map((c) => c.depth), (n) => new Float32Array(n)), valid: cat(cols.map((c) => c.valid), (n) => new Uint8Array(n)),
    }, all.length);
  }
  const name = info.kind === 'image' ? 'image' : 'latent';
  const cols = batches.map((b) => readFixed(b, name));
  const rowSize = cols[0]!.rowSize;
  const n = cols.reduce((a, c) => a + c.labels.length, 0);
  const out = info.kind === 'image' ? new Uint8Array(n * rowSize) : new Float32Array(n * rowSize);
  const labels = new Int32Array(n);
  let at = 0;
  for (const c of cols) {
    out.set(c.values, at * rowSize);
    labels.set(c.labels, at);
    at += c.labels.length;
  }
  return fixedBatch(schema, out, labels);
}

/** One record batch as Arrow IPC stream bytes (schema message + batch + end-of-stream). */
export function toIpc(batch: RecordBatch): Uint8Array {
  return tableToIPC(new Table(batch), 'stream');
}

/** Inverse of `toIpc`; throws an Error when the bytes are not one onelora record batch. */
export function fromIpc(bytes: Uint8Array): RecordBatch {
  const table = tableFromIPC(bytes);
  describeSchema(table.schema);
  if (table.batches.length === 0) return emptyBatch(table.schema);
  return concatBatches(table.schema, table.batches);
}
