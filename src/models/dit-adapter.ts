// A DiT adapter in diffusers' module names (`onelora merge --adapter-only --layout diffusers`) and
// back (loading such an adapter onto any DiT): the keys `base_model.model.<module>.<name>` as PEFT
// names them on diffusers' DiTTransformer2DModel, so a diffusers user can load the adapter there.
// onelora's DiT keeps facebookresearch's module paths whatever layout it was read from (dit-load.ts
// maps the weights); adapters are mapped here, by the same table (diffusersNames):
//  - the fused qkv is three linears to_q/to_k/to_v in diffusers: a per-output-row tensor (1LoRA's
//    onelora_b, LoRA's lora_B, DoRA's magnitude) is split by rows, LoRA's lora_A (the input side)
//    is the same for the three (ΔW_q = B[q rows]·A exactly); any other tensor on qkv is refused;
//  - the timestep embedder and class table are repeated in every diffusers block: the tensors are
//    copied into each, and on the way back must be identical copies.
import { UserError } from '../errors.js';
import { diffusersNames } from './dit-load.js';

const PREFIX = 'base_model.model.';

/** Per-output-row tensors (split by rows across q, k, v) and input-side ones (shared by them). */
const ROW_SPLIT = new Set(['onelora_b', 'lora_B.weight', 'lora_magnitude_vector']);
const SHARED = new Set(['lora_A.weight']);

export interface AdapterTensor {
  readonly dtype: 'F32';
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** facebookresearch module paths of a DiT with `depth` blocks that diffusers names differently. */
function originalModules(depth: number): string[] {
  const blocks = Array.from({ length: depth }, (_, i) => ['adaLN_modulation.1', 'attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'].map((m) => `blocks.${i}.${m}`)).flat();
  return ['x_embedder.proj', 't_embedder.mlp.0', 't_embedder.mlp.2', 'y_embedder.embedding_table', ...blocks, 'final_layer.adaLN_modulation.1', 'final_layer.linear'];
}

/** A module's diffusers module paths (three for qkv, one per block for the embedders). */
function diffusersModules(mod: string, depth: number): string[] {
  return diffusersNames(`${mod}.w`, depth).map((n) => n.slice(0, -2));
}

const isCopied = (mod: string): boolean => mod.startsWith('t_embedder') || mod.startsWith('y_embedder');

/** Splits a module path + tensor name key; null when the module is not one of the DiT's. */
function splitKey(key: string, modules: readonly string[]): { mod: string; name: string } | null {
  if (!key.startsWith(PREFIX)) return null;
  const rest = key.slice(PREFIX.length);
  const mod = modules.find((m) => rest.startsWith(`${m}.`));
  return mod === undefined ? null : { mod, name: rest.slice(mod.length + 1) };
}

/** Adapter tensors in facebookresearch names → diffusers names (file layout: rows are output rows). */
export function ditAdapterToDiffusers(tensors: Readonly<Record<string, AdapterTensor>>, depth: number): Record<string, AdapterTensor> {
  const modules = originalModules(depth);
  const out: Record<string, AdapterTensor> = {};
  for (const [key, t] of Object.entries(tensors)) {
    const k = splitKey(key, modules);
    if (!k) throw new UserError(`adapter tensor '${key}' is not on a DiT module diffusers has a name for (only per-module adapter tensors can be renamed)`);
    const targets = diffusersModules(k.mod, depth);
    if (targets.length === 1 || isCopied(k.mod) || SHARED.has(k.name)) {
      for (const m of targets) out[`${PREFIX}${m}.${k.name}`] = t;
      continue;
    }
    if (!ROW_SPLIT.has(k.name)) throw new UserError(`adapter tensor '${key}': the fused qkv is three linears in diffusers and '${k.name}' does not split into them (1LoRA, LoRA and DoRA do)`);
    const rows = t.shape[0]! / targets.length;
    const per = t.data.length / targets.length;
    targets.forEach((m, i) => (out[`${PREFIX}${m}.${k.name}`] = { dtype: 'F32', shape: [rows, ...t.shape.slice(1)], data: t.data.subarray(i * per, (i + 1) * per) }));
  }
  return out;
}

/** Whether an adapter's keys are diffusers' DiT names. */
function hasDiffusersNames(keys: Iterable<string>): boolean {
  for (const k of keys) if (k.startsWith(`${PREFIX}transformer_blocks.`) || k.startsWith(`${PREFIX}proj_out_`) || k.startsWith(`${PREFIX}pos_embed.`)) return true;
  return false;
}

/** The diffusers module paths an adapter adapts (PEFT's target_modules as full paths: unambiguous). */
export function diffusersTargetModules(modules: readonly string[], depth: number): string[] {
  return [...new Set(modules.flatMap((m) => diffusersModules(m, depth)))].sort();
}

/** diffusers module paths → facebookresearch ones (a name it does not know is kept, to be reported as it is). */
function originalTargetModules(names: readonly string[], depth: number): string[] {
  const back = new Map(originalModules(depth).flatMap((m) => diffusersModules(m, depth).map((d) => [d, m] as const)));
  return [...new Set(names.map((n) => back.get(n) ?? n))];
}

function same(a: AdapterTensor, b: AdapterTensor): boolean {
  return a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]) && a.data.every((v, i) => v === b.data[i]);
}

/**
 * Adapter tensors in diffusers names → facebookresearch names, the inverse of ditAdapterToDiffusers;
 * keys it does not know are kept as they are (the adapter loader then names them as unexpected).
 */
function ditAdapterFromDiffusers(tensors: ReadonlyMap<string, AdapterTensor>, depth: number, source: string): Map<string, AdapterTensor> {
  const left = new Map(tensors);
  const out = new Map<string, AdapterTensor>();
  for (const mod of originalModules(depth)) {
    const parts = diffusersModules(mod, depth);
    const names = [...left.keys()].filter((k) => k.startsWith(`${PREFIX}${parts[0]}.`)).map((k) => k.slice(PREFIX.length + parts[0]!.length + 1));
    for (const name of names) {
      const keys = parts.map((p) => `${PREFIX}${p}.${name}`);
      const missing = keys.find((k) => !left.has(k));
      if (missing !== undefined) throw new UserError(`${source}: '${missing}' is missing (diffusers' ${isCopied(mod) ? 'per-block copies' : 'q, k, v'} of ${mod}.${name} come together)`);
      const ts = keys.map((k) => left.get(k)!);
      keys.forEach((k) => left.delete(k));
      if (parts.length === 1 || isCopied(mod) || SHARED.has(name)) {
        const bad = ts.findIndex((t) => !same(t, ts[0]!));
        if (bad >= 0) throw new UserError(`${source}: '${keys[bad]}' differs from '${keys[0]}': onelora's DiT has one ${mod}.${name}, so they must be identical copies`);
        out.set(`${PREFIX}${mod}.${name}`, ts[0]!);
        continue;
      }
      const data = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
      let at = 0;
      for (const t of ts) {
        data.set(t.data, at);
        at += t.data.length;
      }
      out.set(`${PREFIX}${mod}.${name}`, { dtype: 'F32', shape: [ts.reduce((n, t) => n + t.shape[0]!, 0), ...ts[0]!.shape.slice(1)], data });
    }
  }
  for (const [k, t] of left) out.set(k, t);
  return out;
}

/** The adapter loader's translation for a DiT with `depth` blocks: reads adapters in diffusers names. */
export function ditAdapterTranslation(depth: number): {
  applies(keys: readonly string[]): boolean;
  targetModules(names: readonly string[]): string[];
  tensors(found: ReadonlyMap<string, AdapterTensor>, source: string): Map<string, AdapterTensor>;
} {
  return {
    applies: (keys) => hasDiffusersNames(keys),
    targetModules: (names) => originalTargetModules(names, depth),
    tensors: (found, source) => ditAdapterFromDiffusers(found, depth, source),
  };
}
