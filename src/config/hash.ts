// The config hash: what a resume compares to refuse another run's checkpoint.
import { createHash } from 'node:crypto';
import type { RunConfig } from './schema.js';

/** Keys left out of the config hash: where to stop, where to write, what runs it and how wide (docs/architecture.md#contracts). */
const UNHASHED_KEYS = ['description', 'max_steps', 'output', 'backend', 'distributed'] as const;

/** JSON with object keys sorted at every level and undefined members dropped. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** sha256 (hex) of everything that changes the result, so a resume can refuse another run's checkpoint. */
export function configHash(cfg: RunConfig): string {
  const hashed: Record<string, unknown> = { ...cfg };
  for (const k of UNHASHED_KEYS) delete hashed[k];
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex');
}

