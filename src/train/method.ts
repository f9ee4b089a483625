// The method SPEC a run trains: the config's `method` with its `rank` override applied.
import { takesRank } from '../peft/registry.js';
import { formatMethodSpec, parseMethodSpec, type MethodSpec } from '../peft/spec.js';

/** The SPEC with the config's `rank` applied to every term that takes one (LoRA, DoRA, VeRA, MoRA). */
export function methodWithRank(spec: string, rank: number | undefined): MethodSpec {
  const parsed = parseMethodSpec(spec);
  if (rank === undefined) return parsed;
  return parseMethodSpec(formatMethodSpec(parsed.terms.map((t) => (takesRank(t.name) && t.r === undefined ? { ...t, r: rank } : t))));
}
