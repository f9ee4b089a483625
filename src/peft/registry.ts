// The method registry (docs/internals.md#explicit-registries): one explicit literal list, no side-effect imports. Adding a
// method is one file and one line here: its SPEC name, keys, kind and rank come from its
// `MethodDef`, and everything that lists methods (the SPEC grammar, the one-delta-per-layer rule,
// `rank` overrides, the conformance suite, test/peft/registry.test.ts) reads them from this list.
import { UserError } from '../errors.js';
import { bitfit } from './bitfit.js';
import { difffit, difffitGamma } from './difffit.js';
import { dora } from './dora.js';
import { full } from './full.js';
import { lora } from './lora.js';
import { mora1, mora6 } from './mora.js';
import { norms } from './norms.js';
import { oneLora, oneLoraRandom } from './onelora.js';
import type { MethodDef, MethodKind } from './types.js';
import { vera } from './vera.js';

export const METHODS = [
  oneLora, oneLoraRandom, lora, dora, vera, mora1, mora6, bitfit, difffit, difffitGamma, norms, full,
] as const;

export type MethodName = (typeof METHODS)[number]['name'];

export const METHOD_NAMES: readonly MethodName[] = METHODS.map((m) => m.name);

function namesOfKind(...kinds: MethodKind[]): readonly MethodName[] {
  return METHODS.filter((m) => kinds.includes(m.kind)).map((m) => m.name);
}

/** Methods that add a delta to a linear layer's output: at most one per layer. */
export const DELTA_METHODS = namesOfKind('delta');

/** What a delta method may be combined with: the methods that only add a bias, a γ or the norms. */
export const STACKABLE_METHODS = namesOfKind('bias', 'gamma', 'norms');

const byName = new Map<string, MethodDef>(METHODS.map((m) => [m.name, m]));

export function isMethodName(s: string): s is MethodName {
  return byName.has(s);
}

export function methodDef(name: string): MethodDef {
  const def = byName.get(name);
  if (!def) throw new UserError(`unknown method '${name}' (known: ${METHOD_NAMES.join(', ')})`);
  return def;
}

/** Whether the method takes a rank (declares the key `r`): what the config's `rank` overrides. */
export function takesRank(name: string): boolean {
  return methodDef(name).keys.includes('r');
}
