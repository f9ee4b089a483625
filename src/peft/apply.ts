// Applies a method SPEC to a model (docs/architecture.md#the-method and #method-spec): attaches one adapter per target linear
// (delta methods, wrapped by DiffFit's γ when combined), marks selected parameters trainable, and
// returns the state the trainer, the adapter files and `merge` work from. Every trainable tensor
// is keyed by its adapter-file key (`base_model.model.<module path>.<name>`, docs/architecture.md#adapter-directories).
import { tf } from '../backend/tf.js';
import { UserError } from '../errors.js';
import type { AdaptableModel, LinearAdapter, LinearModule } from '../nn/modules.js';
import { DELTA_METHODS, methodDef } from './registry.js';
import { toMethodSpec, type MethodSpec, type MethodTerm } from './spec.js';
import { selectTargets } from './targets.js';
import { KEY_PREFIX, type BuildContext, type MethodDef } from './types.js';

export interface ApplyOptions {
  /** Base seed; each tensor mixes in its own key (src/peft/init.ts). Default 0. */
  readonly seed?: number;
  /** Targets for terms that do not set their own (default all-linear). */
  readonly targets?: string;
  readonly exclude?: string;
  /** Train the output head whole as a new task head (default: ViT classification). */
  readonly trainHead?: boolean;
  /**
   * Parameter names (as in `model.parameters()`) made for the task that are not head linears — a
   * DiT's new class table: trained whole and saved as task head tensors (PEFT's modules_to_save).
   */
  readonly headParams?: readonly string[];
}

export interface PeftState {
  readonly spec: MethodSpec;
  readonly seed: number;
  readonly options: ApplyOptions;
  /** Paths of the linear layers the spec adapts (delta, bias and γ terms), in model order. */
  readonly targets: readonly string[];
  readonly trainable: Map<string, tf.Variable>;
  /** Frozen tensors saved in the adapter file (VeRA's shared A and B, 1LoRA-random's c). */
  readonly buffers: Map<string, tf.Variable>;
  /** Keys of a newly created task head: trained and saved, but counted apart (`params` head). */
  readonly headKeys: ReadonlySet<string>;
  /** Keys held here in kernel layout [in, out]; the file stores [out, in]. */
  readonly kernelLayout: ReadonlySet<string>;
  readonly merged: boolean;
  /** Folds every mergeable adapter into W0 and β; the forward then runs the plain base layer. */
  merge(): void;
  unmerge(): void;
  /** Unmerges, detaches the adapters, restores the layers' flags and biases, frees the tensors. */
  dispose(): void;
  /**
   * Merges for good: keeps the folded weights (and any bias BitFit added), detaches and frees the
   * adapters, clears the trainable flags. The state is spent afterwards (dispose does nothing).
   */
  unload(): void;
  /** Layers that had no bias before BitFit added one (an exporter must write these biases). */
  readonly addedBiases: readonly string[];
}

interface Snapshot {
  readonly bias: tf.Variable<tf.Rank.R1> | null;
  readonly trainBias: boolean;
  readonly trainWeight: boolean;
}

/** Terms in build order: delta methods first, then selections, then γ (which wraps the delta). */
function buildOrder(terms: readonly MethodTerm[]): MethodTerm[] {
  const rank = (t: MethodTerm): number => {
    if (DELTA_METHODS.includes(t.name)) return 0;
    const kind = methodDef(t.name).kind;
    return kind === 'gamma' || kind === 'difffit' ? 2 : 1;
  };
  return [...terms].sort((a, b) => rank(a) - rank(b));
}

/** Whether a method acts on target linears (as opposed to the norms or the whole model). */
export function actsOnLinears(def: MethodDef): boolean {
  return def.kind !== 'norms' && def.kind !== 'all';
}

export function applyMethod(model: AdaptableModel, spec: string | MethodSpec, opts: ApplyOptions = {}): PeftState {
  const parsed = toMethodSpec(spec);
  const seed = opts.seed ?? 0;
  const linears = model.linears();
  const busy = linears.find((l) => l.adapter !== null || l.trainWeight || l.trainBias);
  if (busy) throw new UserError(`layer '${busy.path}' is already adapted or trainable: dispose the previous PEFT state first`);
  const snapshots = new Map<LinearModule, Snapshot>(linears.map((l) => [l, { bias: l.bias, trainBias: l.trainBias, trainWeight: l.trainWeight }]));
  const newHead = opts.trainHead ?? model.family === 'vit';
  const headSet = new Set(model.headPaths);
  const trainable = new Map<string, tf.Variable>();
  const buffers = new Map<string, tf.Variable>();
  const kernel = new Set<string>();
  const headKeys = new Set<string>();
  const shared = new Map<string, tf.Variable>();
  const touched = new Set<string>();
  const linearWeightNames = new Set(linears.map((l) => `${l.path}.weight`));

  for (const term of buildOrder(parsed.terms)) {
    const def = methodDef(term.name);
    if (actsOnLinears(def)) {
      const layers = selectTargets(linears, { targets: term.targets ?? opts.targets, exclude: opts.exclude, headPaths: model.headPaths, newHead });
      const ctx: BuildContext = { seed: term.seed ?? seed, term, layers, shared };
      for (const layer of layers) {
        touched.add(layer.path);
        if (def.createAdapter) layer.adapter = def.createAdapter(layer, ctx, layer.adapter);
        for (const [name, v] of def.selectLinear?.(layer) ?? []) {
          trainable.set(`${KEY_PREFIX}${layer.path}.${name}`, v);
          if (name === 'weight') kernel.add(`${KEY_PREFIX}${layer.path}.${name}`);
        }
      }
    }
    if (def.trainsNorms) {
      for (const n of model.norms()) {
        trainable.set(`${KEY_PREFIX}${n.path}.weight`, n.weight);
        if (n.bias) trainable.set(`${KEY_PREFIX}${n.path}.bias`, n.bias);
      }
    }
    if (def.kind === 'all') {
      for (const l of linears) def.selectLinear?.(l);
      for (const [name, v] of def.selectModel?.(model) ?? []) {
        trainable.set(`${KEY_PREFIX}${name}`, v);
        if (linearWeightNames.has(name)) kernel.add(`${KEY_PREFIX}${name}`);
      }
    }
  }
  for (const layer of linears) {
    const a: LinearAdapter | null = layer.adapter;
    if (!a) continue;
    for (const [name, v] of a.trainable()) {
      trainable.set(`${KEY_PREFIX}${layer.path}.${name}`, v);
      if (v.rank === 2) kernel.add(`${KEY_PREFIX}${layer.path}.${name}`);
    }
    for (const [name, v] of a.buffers()) buffers.set(`${KEY_PREFIX}${layer.path}.${name}`, v as tf.Variable);
  }
  for (const [key, v] of shared) {
    buffers.set(key, v);
    if (v.rank === 2) kernel.add(key);
  }
  if (newHead) {
    for (const l of linears.filter((x) => headSet.has(x.path))) {
      l.trainWeight = true;
      const wk = `${KEY_PREFIX}${l.path}.weight`;
      trainable.set(wk, l.weight);
      kernel.add(wk);
      headKeys.add(wk);
      if (l.bias) {
        l.trainBias = true;
        trainable.set(`${KEY_PREFIX}${l.path}.bias`, l.bias);
        headKeys.add(`${KEY_PREFIX}${l.path}.bias`);
      }
    }
  }
  const params = model.parameters();
  const headVars = new Map<tf.Variable, boolean>();
  for (const name of opts.headParams ?? []) {
    const v = params.get(name);
    if (!v) throw new UserError(`head parameter '${name}' is not a parameter of this model`);
    headVars.set(v, v.trainable);
    v.trainable = true;
    trainable.set(`${KEY_PREFIX}${name}`, v);
    headKeys.add(`${KEY_PREFIX}${name}`);
  }
  return makeState(model, parsed, seed, opts, linears.filter((l) => touched.has(l.path)).map((l) => l.path), {
    trainable, buffers, kernel, headKeys, shared, snapshots, headVars,
  });
}

function makeState(
  model: AdaptableModel, spec: MethodSpec, seed: number, options: ApplyOptions, targets: string[],
  parts: {
    trainable: Map<string, tf.Variable>; buffers: Map<string, tf.Variable>; kernel: Set<string>; headKeys: Set<string>;
    shared: Map<string, tf.Variable>; snapshots: Map<LinearModule, Snapshot>; headVars: Map<tf.Variable, boolean>;
  },
): PeftState {
  let merged = false;
  let spent = false;
  const adapted = (): LinearModule[] => model.linears().filter((l) => l.adapter !== null);
  const state: PeftState = {
    spec, seed, options, targets,
    trainable: parts.trainable,
    buffers: parts.buffers,
    headKeys: parts.headKeys,
    kernelLayout: parts.kernel,
    get merged() {
      return merged;
    },
    merge() {
      if (merged) return;
      for (const l of adapted()) {
        l.adapter!.merge(l);
        l.merged = true;
      }
      merged = true;
    },
    unmerge() {
      if (!merged) return;
      for (const l of adapted().reverse()) {
        l.adapter!.unmerge(l);
        l.merged = false;
      }
      merged = false;
    },
    addedBiases: [...parts.snapshots].filter(([l, snap]) => snap.bias === null && l.bias !== null).map(([l]) => l.path),
    unload() {
      state.merge();
      for (const l of parts.snapshots.keys()) {
        l.adapter?.dispose();
        l.adapter = null;
        l.merged = false;
        l.trainBias = false;
        l.trainWeight = false;
      }
      for (const v of parts.shared.values()) v.dispose();
      for (const [v, was] of parts.headVars) v.trainable = was;
      spent = true;
    },
    dispose() {
      if (spent) return;
      spent = true;
      state.unmerge();
      for (const [l, snap] of parts.snapshots) {
        l.adapter?.dispose();
        l.adapter = null;
        l.merged = false;
        if (l.bias && l.bias !== snap.bias) l.bias.dispose();
        l.bias = snap.bias;
        l.trainBias = snap.trainBias;
        l.trainWeight = snap.trainWeight;
      }
      for (const v of parts.shared.values()) v.dispose();
      for (const [v, was] of parts.headVars) v.trainable = was;
    },
  };
  return state;
}
