// The WebGPU backend (docs/gpu.md): tfjs-backend-webgpu over Dawn's Node binding (`webgpu`), the
// GPU path that installs from the npm registry alone (dawn.node ships inside the package; it needs
// libvulkan.so.1 and a Vulkan driver). Both packages are optionalDependencies, loaded lazily.
//
// What this module adds to tfjs's own registration: the adapter is chosen here (ONELORA_WEBGPU_ADAPTER,
// else CUDA_VISIBLE_DEVICES, see pickAdapter), the device asks for every limit at the adapter's
// maximum (tfjs asks for six), and a tensor larger than one storage-buffer binding is a UserError
// naming its shape, bytes and the limit instead of a driver validation error far from its cause.
import { UserError } from '../errors.js';
import { tf } from './tf.js';

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (lavapipe, SwiftShader): correct but slower than wasm. */
  software: boolean;
  /** How the adapter was chosen (the Dawn `adapter=` name filter, or the default). */
  selection: string;
  limits: Record<string, number>;
}

/** The limits doctor prints and docs/gpu.md discusses; the device requests all of them anyway. */
export const KEY_LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage'] as const;

interface DawnModule {
  create(options: string[]): GPU;
  globals: object;
}

let dawn: DawnModule | null = null;
// The GPU instance must stay referenced as long as its adapter lives: dawn.node frees the instance
// when it is collected and the adapter's device then crashes the process (SIGSEGV, measured).
let chosen: { gpu: GPU; adapter: GPUAdapter; summary: AdapterSummary } | null = null;
let bindingLimit = Infinity;
let registered = false;

async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  try {
    dawn = (await import('webgpu' as string)) as DawnModule;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? '';
    if (/Cannot find (module|package)/.test(msg)) throw new Error("the 'webgpu' package is not installed (optional dependency)");
    // dawn.node loads libvulkan.so.1 when it is required: a machine without the Vulkan loader fails here.
    throw new Error(`dawn.node did not load (${msg}); it needs libvulkan.so.1 and a Vulkan driver`);
  }
  // tfjs-backend-webgpu reads GPUBufferUsage and friends as globals and `navigator.gpu` at import.
  Object.assign(globalThis, dawn.globals);
  return dawn;
}

/**
 * The adapters Dawn can see, by name. dawn.node has no enumeration call; asked for an adapter name
 * that matches nothing it throws a message listing each one (`* backend: 'vulkan', name: '…'`).
 */
export async function listAdapterNames(): Promise<string[]> {
  const d = await loadDawn();
  try {
    await d.create(['adapter=\u0001onelora-none']).requestAdapter();
    return [];
  } catch (err) {
    return [...(err as Error).message.matchAll(/name: '(.*)'$/gm)].map((m) => m[1] as string);
  }
}

const SOFTWARE_NAME = /llvmpipe|lavapipe|swiftshader/i;

/**
 * Which adapter this process uses. ONELORA_WEBGPU_ADAPTER: a name substring (Dawn's `adapter=`
 * filter, case-sensitive). Else the first entry of CUDA_VISIBLE_DEVICES, when it is an index, picks
 * that hardware adapter in Dawn's order — by name, which is all Dawn can filter on, so among
 * identically named cards (8 × one model) it cannot pick by index: there the container runtime or
 * the device plugin must expose exactly one GPU (NVIDIA_VISIBLE_DEVICES, a k8s GPU limit of 1).
 */
async function pickAdapter(): Promise<{ options: string[]; selection: string }> {
  const byName = process.env.ONELORA_WEBGPU_ADAPTER;
  if (byName) return { options: [`adapter=${byName}`], selection: `ONELORA_WEBGPU_ADAPTER=${byName}` };
  const first = process.env.CUDA_VISIBLE_DEVICES?.split(',')[0]?.trim();
  if (!first || !/^\d+$/.test(first)) return { options: [], selection: 'default (high-performance)' };
  const names = (await listAdapterNames()).filter((n) => !SOFTWARE_NAME.test(n));
  const name = names[Number(first)];
  if (name === undefined) return { options: [], selection: `default: CUDA_VISIBLE_DEVICES=${first} but Dawn lists ${names.length} hardware adapter(s)` };
  const ambiguous = names.filter((n) => n.includes(name)).length > 1;
  return ambiguous
    ? { options: [], selection: `default: CUDA_VISIBLE_DEVICES=${first} names '${name}', which ${names.length} adapters share (Dawn filters by name only)` }
    : { options: [`adapter=${name}`], selection: `CUDA_VISIBLE_DEVICES=${first} -> '${name}'` };
}

/** GPUAdapter.info (newer than the @webgpu/types the package pins). */
function infoOf(adapter: GPUAdapter): GPUAdapterInfo & { isFallbackAdapter?: boolean } {
  return (adapter as unknown as { info: GPUAdapterInfo }).info;
}

function summarize(adapter: GPUAdapter, selection: string): AdapterSummary {
  const info = infoOf(adapter);
  const limits: Record<string, number> = {};
  // GPUSupportedLimits' fields are getters on the prototype: for…in walks them.
  for (const k in adapter.limits) limits[k] = (adapter.limits as unknown as Record<string, number>)[k] as number;
  const software = info.architecture === 'software' || info.isFallbackAdapter === true || SOFTWARE_NAME.test(`${info.description} ${info.device}`);
  return { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, software, selection, limits };
}

/** Finds the adapter (once per process) without creating a device: doctor and `auto` look first. */
export async function probeAdapter(): Promise<AdapterSummary> {
  if (chosen) return chosen.summary;
  const d = await loadDawn();
  const { options, selection } = await pickAdapter();
  let adapter: GPUAdapter | null;
  const gpu = d.create(options);
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    throw new Error(`Dawn found no adapter (${(err as Error).message.split('\n').join(' ')})`);
  }
  if (!adapter) throw new Error('Dawn found no Vulkan adapter (is a Vulkan driver / ICD installed? see docs/gpu.md)');
  chosen = { gpu, adapter, summary: summarize(adapter, selection) };
  return chosen.summary;
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 4, complex64: 8 };

/** A tensor of `shape` must fit one storage-buffer binding on the webgpu backend (no-op elsewhere). */
export function checkFitsDevice(name: string, shape: readonly number[], dtype = 'float32'): void {
  if (bindingLimit === Infinity || tf.getBackend() !== 'webgpu') return;
  const bytes = shape.reduce((a, b) => a * b, 1) * (BYTES[dtype] ?? 4);
  if (bytes > bindingLimit) {
    throw new UserError(`tensor ${name} [${shape.join(', ')}] is ${bytes} bytes, over this WebGPU adapter's maxStorageBufferBindingSize of ${bindingLimit} bytes (use a smaller model or batch, or --backend tensorflow-gpu/wasm)`);
  }
}

/**
 * Registers tfjs's 'webgpu' backend on the chosen adapter with a device that requests every limit
 * at the adapter's maximum. tf.setBackend('webgpu') afterwards creates it.
 */
export async function registerWebGpu(): Promise<AdapterSummary> {
  const summary = await probeAdapter();
  // Once per process: a WebGPU adapter gives one device, and tfjs keeps the backend it made.
  if (registered) return summary;
  registered = true;
  const { gpu, adapter } = chosen as { gpu: GPU; adapter: GPUAdapter };
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  // Node 20 has no global navigator (21+ has one without `gpu`); tfjs-backend-webgpu checks navigator.gpu at import.
  if (!nav) Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  else if (!nav.gpu) nav.gpu = gpu;
  const { WebGPUBackend } = (await import('@tensorflow/tfjs-backend-webgpu' as string)) as { WebGPUBackend: new (device: GPUDevice, info: GPUAdapterInfo) => tf.KernelBackend };
  bindingLimit = summary.limits.maxStorageBufferBindingSize ?? Infinity;
  const limit = bindingLimit;
  // The package registered its own factory at import (default adapter, six limits): replace it.
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', async () => {
    const requiredFeatures = (['timestamp-query', 'shader-f16'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits: { ...summary.limits } });
    const backend = new WebGPUBackend(device, infoOf(adapter));
    // Every tensor's buffer goes through write(); an oversized one would otherwise fail validation
    // inside Dawn at its first use with a message that names neither the tensor nor the limit.
    const write = backend.write.bind(backend);
    backend.write = (values, shape, dtype) => {
      const bytes = shape.reduce((a, b) => a * b, 1) * (BYTES[dtype] ?? 4);
      if (bytes > limit) throw new UserError(`a tensor [${shape.join(', ')}] (${dtype}) is ${bytes} bytes, over this WebGPU adapter's maxStorageBufferBindingSize of ${limit} bytes (use a smaller model or batch, or --backend tensorflow-gpu/wasm)`);
      return write(values, shape, dtype);
    };
    return backend;
  }, 1);
  return summary;
}

/** The active adapter's summary, when the webgpu backend was registered in this process. */
export function activeAdapter(): AdapterSummary | null {
  return chosen?.summary ?? null;
}
