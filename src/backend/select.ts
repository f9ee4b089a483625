// Backend selection (docs/architecture.md#backends): tfjs-node-gpu, then WebGPU on a hardware
// adapter, then tfjs-node, then wasm, then the pure-JS cpu backend. tfjs-node, tfjs-node-gpu and
// the WebGPU pair are optionalDependencies, so each is probed with a dynamic import and skipped with
// the reason when absent. One GPU per worker process: CUDA_VISIBLE_DEVICES picks it (for WebGPU as
// far as Dawn allows: src/backend/webgpu.ts, docs/gpu.md).
import { BACKEND_CHOICES, type BackendChoice, type BackendName } from './choices.js';
import { tf } from './tf.js';
import { UserError, messageOf } from '../errors.js';
import { childLog } from '../log.js';
import { activeAdapter, probeAdapter, registerWebGpu } from './webgpu.js';

export { tf };

export { BACKEND_CHOICES, type BackendChoice, type BackendName };

export interface BackendInfo {
  readonly name: BackendName;
  /** The tfjs backend id actually active: 'tensorflow' (both node packages), 'webgpu', 'wasm' or 'cpu'. */
  readonly tfBackend: string;
  readonly reason: string;
  /** Why each earlier candidate was skipped, in order. */
  readonly skipped: readonly string[];
}

const log = childLog('backend');
let active: BackendInfo | null = null;

export function parseBackendChoice(value: string | undefined, source: string): BackendChoice {
  const v = value ?? 'auto';
  if ((BACKEND_CHOICES as readonly string[]).includes(v)) return v as BackendChoice;
  throw new UserError(`${source}: unknown backend '${v}' (choose one of ${BACKEND_CHOICES.join(', ')})`);
}

/** Loads a backend's package; `auto` is true when the choice was not explicit. */
type Loader = (auto: boolean) => Promise<void>;

const loaders: Record<BackendName, Loader> = {
  // The node packages register the 'tensorflow' backend with the tfjs-core they share with us.
  'tensorflow-gpu': async () => {
    await import('@tensorflow/tfjs-node-gpu' as string);
  },
  // A software adapter (lavapipe, SwiftShader) runs tfjs-webgpu's shaders on the CPU slower than
  // wasm: auto skips it; --backend webgpu takes whatever adapter there is.
  webgpu: async (auto) => {
    const adapter = await probeAdapter();
    if (auto && adapter.software) throw new Error(`adapter '${adapter.description}' is a software (CPU) implementation, slower than wasm; --backend webgpu uses it anyway`);
    await registerWebGpu();
  },
  tensorflow: async () => {
    await import('@tensorflow/tfjs-node' as string);
  },
  wasm: async () => {},
  cpu: async () => {},
};

const tfIds: Record<BackendName, string> = { 'tensorflow-gpu': 'tensorflow', webgpu: 'webgpu', tensorflow: 'tensorflow', wasm: 'wasm', cpu: 'cpu' };

async function tryBackend(name: BackendName, auto: boolean): Promise<string | null> {
  try {
    await loaders[name](auto);
    const ok = await tf.setBackend(tfIds[name]);
    if (!ok) return `tf.setBackend('${tfIds[name]}') returned false`;
    await tf.ready();
    return null;
  } catch (err) {
    if (err instanceof UserError) throw err;
    const msg = messageOf(err).split('\n')[0] ?? '';
    if (/Cannot find (module|package)/.test(msg)) return name === 'webgpu' ? `${msg} (optional dependency)` : `${name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node'} is not installed (optional dependency; its install downloads libtensorflow)`;
    return msg;
  }
}

/**
 * Selects and initialises the tensor backend once per process. `choice` comes from --backend,
 * else ONELORA_BACKEND, else 'auto'. An explicit choice that fails is an error (exit 2);
 * 'auto' falls through the candidates and logs why each was skipped. The choice is logged at
 * `logLevel` (info; a worker under `launch` says debug, its coordinator logs the group's backends).
 */
export async function initBackend(choice?: string, opts: { logLevel?: 'info' | 'debug' } = {}): Promise<BackendInfo> {
  const resolved = parseBackendChoice(choice ?? process.env.ONELORA_BACKEND, choice ? '--backend' : 'ONELORA_BACKEND');
  if (active && (resolved === 'auto' || resolved === active.name)) return active;
  tf.env().set('PROD', true);
  const candidates: BackendName[] = resolved === 'auto' ? ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] : [resolved];
  const skipped: string[] = [];
  for (const name of candidates) {
    const failure = await tryBackend(name, resolved === 'auto');
    if (failure === null) {
      const reason = resolved === 'auto' ? `auto: first available of ${candidates.join(' > ')}` : `requested (${choice ? '--backend' : 'ONELORA_BACKEND'})`;
      active = { name, tfBackend: tf.getBackend(), reason, skipped };
      const adapter = name === 'webgpu' ? activeAdapter() : null;
      log[opts.logLevel ?? 'info']({ backend: name, reason, skipped, cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES, ...(adapter ? { adapter: adapter.description, adapterSelection: adapter.selection } : {}) }, `backend ${name}`);
      return active;
    }
    skipped.push(`${name}: ${failure}`);
    log.debug({ backend: name, failure }, 'backend unavailable');
  }
  throw new UserError(`backend '${resolved}' is not available: ${skipped.join('; ')}`);
}
