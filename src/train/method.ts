// The method SPEC a run trains: the config's `method` with its `rank` override applied.
import { formatMethodSpec, parseMethodSpec, type MethodSpec } from '../peft/spec.js';

/** The SPEC with the config's `rank` applied to every term that has one (LoRA, DoRA, VeRA, MoRA). */
export function methodWithRank(spec: string, rank: number | undefined): MethodSpec {
  const parsed = parseMethodSpec(spec);
  if (rank === undefined) return parsed;
  const ranked = new Set(['lora', 'dora', 'vera', 'mora1', 'mora6']);
  return parseMethodSpec(formatMethodSpec(parsed.terms.map((t) => (ranked.has(t.name) && t.r === undefined ? { ...t, r: rank } : t))));
}
