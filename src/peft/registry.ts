// The method registry (STYLE item 2): one explicit literal list, no side-effect imports. The
// conformance suite (test/peft/conformance.test.ts) runs over exactly this list.
import { UserError } from '../errors.js';
import { bitfit } from './bitfit.js';
import { difffit, difffitGamma } from './difffit.js';
import { dora } from './dora.js';
import { full } from './full.js';
import { lora } from './lora.js';
import { mora1, mora6 } from './mora.js';
import { norms } from './norms.js';
import { oneLora, oneLoraRandom } from './onelora.js';
import { METHOD_NAMES, type MethodName } from './spec.js';
import type { MethodDef } from './types.js';
import { vera } from './vera.js';

export const METHODS: readonly MethodDef[] = [
  oneLora, oneLoraRandom, lora, dora, vera, mora1, mora6, bitfit, difffit, difffitGamma, norms, full,
];

const byName = new Map<string, MethodDef>(METHODS.map((m) => [m.name, m]));

export function methodDef(name: MethodName | string): MethodDef {
  const def = byName.get(name);
  if (!def) throw new UserError(`unknown method '${name}' (known: ${METHOD_NAMES.join(', ')})`);
  return def;
}
