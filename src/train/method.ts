// The method SPEC a run trains: the config's `method` with its `rank`, `alpha` and `dropout`
// overrides applied (each to the terms that take that key and do not set it themselves).
import { methodDef, takesRank } from '../peft/registry.js';
import { formatMethodSpec, parseMethodSpec, type MethodSpec } from '../peft/spec.js';

/** The config's LoRA-family overrides: α and the adapter dropout (PEFT's lora_alpha, lora_dropout). */
export interface MethodOverrides {
  readonly alpha?: number | undefined;
  readonly dropout?: number | undefined;
}

/** The SPEC with the config's `rank` applied to every term that takes one (LoRA, DoRA, VeRA, MoRA), and `alpha`/`dropout` likewise. */
export function methodWithRank(spec: string, rank: number | undefined, over: MethodOverrides = {}): MethodSpec {
  const parsed = parseMethodSpec(spec);
  if (rank === undefined && over.alpha === undefined && over.dropout === undefined) return parsed;
  const takes = (name: string, key: 'alpha' | 'dropout'): boolean => methodDef(name).keys.includes(key);
  return parseMethodSpec(
    formatMethodSpec(
      parsed.terms.map((t) => ({
        ...t,
        // MoRA's lora_r already sets the rank its own way.
        ...(rank !== undefined && takesRank(t.name) && t.r === undefined && t.lora_r === undefined ? { r: rank } : {}),
        ...(over.alpha !== undefined && takes(t.name, 'alpha') && t.alpha === undefined ? { alpha: over.alpha } : {}),
        ...(over.dropout !== undefined && takes(t.name, 'dropout') && t.dropout === undefined ? { dropout: over.dropout } : {}),
      })),
    ),
  );
}
