// The cases the conformance suite runs: every registered method alone, then the keys and the
// paper's combinations. test/peft/registry.test.ts checks every method is here.
import { METHODS } from '../../src/peft/registry.js';

export interface ConformanceCase {
  readonly spec: string;
  readonly family?: 'llama' | 'vit';
}

export const CASES: readonly ConformanceCase[] = [
  ...METHODS.map((m) => ({ spec: m.name })),
  { spec: 'lora:r=2,alpha=3,rslora=true' }, { spec: 'dora:r=2' }, { spec: 'vera:r=3,seed=5' }, { spec: 'mora1:r=3' }, { spec: 'mora6:r=4' },
  { spec: '1lora+norms' }, { spec: '1lora+bitfit' }, { spec: '1lora+difffit-gamma' }, { spec: '1lora+bitfit+difffit-gamma+norms' },
  { spec: 'lora+bitfit' }, { spec: 'dora+bitfit+difffit-gamma' }, { spec: 'vera+difffit' }, { spec: 'mora6+bitfit' },
  { spec: '1lora-random:seed=3+bitfit' }, { spec: 'lora:targets=qkv' }, { spec: '1lora:targets=o_proj,down_proj' },
  { spec: '1lora', family: 'vit' }, { spec: 'lora', family: 'vit' }, { spec: 'all', family: 'vit' },
];

export function caseName(c: ConformanceCase): string {
  return `${c.spec}${c.family ? ` (${c.family})` : ''}`;
}
