// The SPEC grammar (docs/architecture.md#method-spec) and target selection.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../src/errors.js';
import type { LinearSpec } from '../../src/nn/modules.js';
import { METHOD_NAMES, parseMethodSpec } from '../../src/peft/spec.js';
import { METHODS } from '../../src/peft/registry.js';
import { selectTargets } from '../../src/peft/targets.js';

function userError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof UserError && pattern.test(e.message));
}

void test('the registry lists every method name exactly once', () => {
  assert.deepEqual(METHODS.map((m) => m.name), [...METHOD_NAMES]);
});

void test('SPEC parsing: terms, keys, canonical text', () => {
  assert.deepEqual(parseMethodSpec('lora:r=1').terms, [{ name: 'lora', r: 1 }]);
  assert.deepEqual(parseMethodSpec('1lora-random:seed=3').terms, [{ name: '1lora-random', seed: 3 }]);
  assert.deepEqual(parseMethodSpec('1lora+norms').terms.map((t) => t.name), ['1lora', 'norms']);
  assert.equal(parseMethodSpec(' lora : alpha=2 , r=4 ,rslora=true+bitfit').text, 'lora:r=4,alpha=2,rslora=true+bitfit');
  assert.deepEqual(parseMethodSpec('lora:r=1,targets=q_proj,v_proj+bitfit').terms, [{ name: 'lora', r: 1, targets: 'q_proj,v_proj' }, { name: 'bitfit' }]);
  assert.equal(parseMethodSpec('difffit:targets=.*_proj|lm_head').terms[0]!.targets, '.*_proj|lm_head');
  assert.equal(parseMethodSpec('1lora:targets=a(b)+c+norms').terms[0]!.targets, 'a(b)+c', 'a + inside a regex stays there');
  assert.equal(parseMethodSpec('1lora:targets=x{1,2}').terms[0]!.targets, 'x{1,2}');
});

void test('SPEC errors name the method, the key or the conflict', () => {
  userError(() => parseMethodSpec('lorra'), /unknown method 'lorra' \(known: 1lora, 1lora-random, lora, dora, vera, mora1, mora6, bitfit, difffit, difffit-gamma, norms, all\)/);
  userError(() => parseMethodSpec('lora:rank=2'), /unknown key 'rank'/);
  userError(() => parseMethodSpec('1lora:r=2'), /key 'r' does not apply/);
  userError(() => parseMethodSpec('lora:r=0'), /key 'r' expects an integer ≥ 1/);
  userError(() => parseMethodSpec('lora:r=1.5'), /key 'r'/);
  userError(() => parseMethodSpec('lora:rslora=yes'), /rslora/);
  userError(() => parseMethodSpec('mora6:r=5'), /must be even/);
  userError(() => parseMethodSpec('lora+1lora'), /lora and 1lora both change the same layers/);
  userError(() => parseMethodSpec('all+norms'), /'all'/);
  userError(() => parseMethodSpec('difffit+norms'), /already includes/);
  userError(() => parseMethodSpec('norms+norms'), /appears twice/);
  userError(() => parseMethodSpec(''), /empty/);
  userError(() => parseMethodSpec('lora:r'), /not key=value/);
});

const L = (path: string, role: LinearSpec['role']): LinearSpec => ({ path, role, inFeatures: 2, outFeatures: 2, hasBias: false });
const LIN = [
  L('model.layers.0.self_attn.q_proj', 'q'), L('model.layers.0.self_attn.k_proj', 'k'), L('model.layers.0.self_attn.v_proj', 'v'),
  L('model.layers.0.self_attn.o_proj', 'attn_out'), L('model.layers.1.mlp.down_proj', 'mlp_out'), L('lm_head', 'head'),
];
const paths = (t?: string, exclude?: string): string[] => selectTargets(LIN, { targets: t, exclude, headPaths: ['lm_head'] }).map((l) => l.path.replace('model.layers.', ''));

void test('targets: all-linear, qkv, names, regex, exclude', () => {
  assert.equal(paths().length, 5, 'all-linear leaves the head out');
  assert.deepEqual(paths('qkv'), ['0.self_attn.q_proj', '0.self_attn.k_proj', '0.self_attn.v_proj']);
  assert.deepEqual(paths('q_proj,down_proj'), ['0.self_attn.q_proj', '1.mlp.down_proj']);
  assert.deepEqual(paths('.*layers\\.1\\..*'), ['1.mlp.down_proj']);
  assert.deepEqual(paths('lm_head'), ['lm_head'], 'a head can be named explicitly');
  assert.deepEqual(paths('qkv', 'k_proj'), ['0.self_attn.q_proj', '0.self_attn.v_proj']);
  assert.deepEqual(paths('all-linear', '.*self_attn.*'), ['1.mlp.down_proj']);
  userError(() => paths('x_proj'), /targets 'x_proj' match no linear layer/);
  userError(() => paths('(unclosed'), /not a valid regex/);
});
