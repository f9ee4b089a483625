// Backend selection (docs/architecture.md#backends): tfjs-node-gpu, then tfjs-node, then wasm, then the pure-JS cpu
// backend. tfjs-node and tfjs-node-gpu are optionalDependencies (their install downloads
// libtensorflow), so each is probed with a dynamic import and skipped with the reason when absent.
// One GPU per worker process: CUDA_VISIBLE_DEVICES picks it, since tfjs has no device API.
import { BACKEND_CHOICES, type BackendChoice, type BackendName } from './choices.js';
import { tf } from './tf.js';
import { UserError, messageOf } from '../errors.js';
import { childLog } from '../log.js';

export { tf };

export { BACKEND_CHOICES, type BackendChoice, type BackendName };

export interface BackendInfo {
  readonly name: BackendName;
  /** The tfjs backend id actually active: 'tensorflow' (both node packages), 'wasm' or 'cpu'. */
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

type Loader = () => Promise<void>;

const loaders: Record<BackendName, Loader> = {
  // The node packages register the 'tensorflow' backend with the tfjs-core they share with us.
  'tensorflow-gpu': async () => {
    await import('@tensorflow/tfjs-node-gpu' as string);
  },
  tensorflow: async () => {
    await import('@tensorflow/tfjs-node' as string);
  },
  wasm: async () => {},
  cpu: async () => {},
};

const tfIds: Record<BackendName, string> = { 'tensorflow-gpu': 'tensorflow', tensorflow: 'tensorflow', wasm: 'wasm', cpu: 'cpu' };

async function tryBackend(name: BackendName): Promise<string | null> {
  try {
    await loaders[name]();
    const ok = await tf.setBackend(tfIds[name]);
    if (!ok) return `tf.setBackend('${tfIds[name]}') returned false`;
    await tf.ready();
    return null;
  } catch (err) {
    const msg = messageOf(err).split('\n')[0] ?? '';
    if (/Cannot find (module|package)/.test(msg)) return `${name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node'} is not installed (optional dependency; its install downloads libtensorflow)`;
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
  const candidates: BackendName[] = resolved === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [resolved];
  const skipped: string[] = [];
  for (const name of candidates) {
    const failure = await tryBackend(name);
    if (failure === null) {
      const reason = resolved === 'auto' ? `auto: first available of ${candidates.join(' > ')}` : `requested (${choice ? '--backend' : 'ONELORA_BACKEND'})`;
      active = { name, tfBackend: tf.getBackend(), reason, skipped };
      log[opts.logLevel ?? 'info']({ backend: name, reason, skipped, cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES }, `backend ${name}`);
      return active;
    }
    skipped.push(`${name}: ${failure}`);
    log.debug({ backend: name, failure }, 'backend unavailable');
  }
  throw new UserError(`backend '${resolved}' is not available: ${skipped.join('; ')}`);
}
