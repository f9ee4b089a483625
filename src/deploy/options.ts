// What `onelora deploy render` is asked for, checked once at the boundary (docs/internals.md#config-is-checked-once-at-the-boundary): every
// mistake is a UserError naming the flag or the config key and file (exit 2, docs/architecture.md#cli-conventions).
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig, type RunConfig } from '../config/index.js';
import { deriveAccumulation } from '../train/batch.js';
import { PATH_KEYS, isPathLike } from '../config/overrides.js';
import { UserError } from '../errors.js';
import { readTextFile } from '../json-file.js';

/** Where the pods see things (deploy/base): the run config's directory and the data volume. */
const POD_CONFIG_DIR = '/config';
const POD_DATA_DIR = '/data';

export interface RenderOptions {
  readonly config: string;
  readonly workers: number;
  readonly image: string;
  readonly out: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly gpusPerWorker?: number;
  readonly workerMemory?: string;
  /** The kustomize base as the overlay's `resources:` entry; absent: referenced or copied (render.ts). */
  readonly base?: string;
  readonly generateToken?: boolean;
  /** A kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt): mutual TLS for gRPC in every pod. */
  readonly tlsSecret?: string;
  /** CURVE-encrypted ZeroMQ links between the workers (ONELORA_ZMQ_CURVE=1 in every pod). */
  readonly zmqCurve?: boolean;
}

export interface ImageRef {
  readonly name: string;
  readonly tag?: string;
  readonly digest?: string;
}

export interface CheckedOptions {
  readonly configFile: string;
  readonly configText: string;
  readonly cfg: RunConfig;
  readonly workers: number;
  readonly accumulation: number;
  readonly image: ImageRef;
  readonly name: string;
  readonly namespace?: string;
  readonly gpusPerWorker: number;
  readonly workerMemory?: string;
  readonly tlsSecret?: string;
  readonly zmqCurve: boolean;
}

// Host memory per worker: the float32 weights pass through it while loading (4 bytes × 6.7 B or
// 13.0 B parameters), plus the runtime. Other models keep the base's 32Gi unless --worker-memory.
const WORKER_MEMORY: Readonly<Record<string, string>> = { 'llama2-7b': '40Gi', 'llama2-13b': '72Gi' };

const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
// [registry[:port]/]path[:tag][@sha256:hex], lower-case path components (the OCI reference grammar, simplified).
const IMAGE = /^((?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?$/;

export function parseImage(image: string): ImageRef {
  const m = IMAGE.exec(image);
  if (!m) throw new UserError(`--image: '${image}' is not an image reference like ghcr.io/onelora/onelora:0.1.0`);
  const [, name, tag, digest] = m;
  if (tag === undefined && digest === undefined) {
    throw new UserError(`--image: '${image}' has no tag or digest; pin one (a moving :latest would mix versions across restarted pods)`);
  }
  return { name: name!, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

function readRaw(file: string, text: string): Record<string, unknown> {
  const raw: unknown = YAML.parse(text);
  if (typeof raw !== 'object' || raw === null) throw new UserError(`${file}: expected a mapping of keys at the top level`);
  return raw as Record<string, unknown>;
}

/**
 * The pods read the run config at /config/run.yaml, so a relative path in it resolves from
 * /config: `../data/x` is /data/x, on the data volume. A path that lands anywhere else would be
 * missing in the pod.
 */
function checkPodPaths(file: string, raw: Record<string, unknown>): void {
  for (const key of PATH_KEYS) {
    if (key === 'output') continue; // the coordinator's --output replaces it
    const [section, leaf] = key.split('.') as [string, string];
    const holder = raw[section];
    const value = typeof holder === 'object' && holder !== null ? (holder as Record<string, unknown>)[leaf] : undefined;
    if (typeof value !== 'string' || !isPathLike(key, value)) continue;
    const inPod = path.posix.resolve(POD_CONFIG_DIR, value);
    if (!inPod.startsWith(POD_DATA_DIR + '/')) {
      throw new UserError(
        `${file}: ${key} '${value}' would be ${inPod} in the pods, outside the data volume at ${POD_DATA_DIR}; ` +
          `use a path relative to the config that starts with ../data/ (the config is mounted at ${POD_CONFIG_DIR}/run.yaml) or an absolute ${POD_DATA_DIR}/… path`,
      );
    }
  }
}

export function checkOptions(opts: RenderOptions): CheckedOptions {
  const configFile = opts.config;
  const configText = readTextFile(configFile, { label: `--config ${configFile}` });
  if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new UserError(`--workers: expected an integer ≥ 1, got ${opts.workers}`);
  // The coordinator is started with --workers N, which sets distributed.workers: validate the same way.
  const cfg = loadConfig(configFile, [`distributed.workers=${opts.workers}`]);
  let accumulation: number;
  try {
    accumulation = deriveAccumulation(cfg, opts.workers);
  } catch (err) {
    throw new UserError(`--workers ${opts.workers} with ${configFile}: ${(err as Error).message}`, { cause: err });
  }
  checkPodPaths(configFile, readRaw(configFile, configText));

  const name = opts.name ?? path.basename(configFile).replace(/\.ya?ml$/, '');
  if (!LABEL_VALUE.test(name)) {
    throw new UserError(`--name: '${name}' must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (it names /data/runs/NAME and a label)`);
  }
  if (opts.namespace !== undefined && !DNS_LABEL.test(opts.namespace)) {
    throw new UserError(`--namespace: '${opts.namespace}' is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63)`);
  }
  const gpusPerWorker = opts.gpusPerWorker ?? 1;
  if (!Number.isInteger(gpusPerWorker) || gpusPerWorker < 1) throw new UserError(`--gpus-per-worker: expected an integer ≥ 1, got ${gpusPerWorker}`);
  const workerMemory = opts.workerMemory ?? (cfg.model.preset !== undefined ? WORKER_MEMORY[cfg.model.preset] : undefined);
  if (workerMemory !== undefined && !QUANTITY.test(workerMemory)) {
    throw new UserError(`--worker-memory: '${workerMemory}' is not a Kubernetes quantity like 64Gi`);
  }
  if (opts.tlsSecret !== undefined && !DNS_SUBDOMAIN.test(opts.tlsSecret)) {
    throw new UserError(`--tls-secret: '${opts.tlsSecret}' is not a Kubernetes Secret name (lower-case letters, digits, '-' and '.')`);
  }
  return {
    configFile,
    configText,
    cfg,
    workers: opts.workers,
    accumulation,
    image: parseImage(opts.image),
    name,
    ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
    gpusPerWorker,
    ...(workerMemory !== undefined ? { workerMemory } : {}),
    ...(opts.tlsSecret !== undefined ? { tlsSecret: opts.tlsSecret } : {}),
    zmqCurve: !!opts.zmqCurve,
  };
}
