import assert from 'node:assert/strict';
import test from 'node:test';
import { TensorSetError, checkTensorSet } from '../../src/checkpoint/tensor-set.js';

const found = (entries: [string, number[]][]): Map<string, { shape: number[] }> => new Map(entries.map(([n, shape]) => [n, { shape }]));
const expected = new Map<string, readonly number[]>([['a.weight', [2, 3]], ['head.weight', [4, 3]]]);

function throwsProblem(f: () => unknown, problem: string, pattern: RegExp): void {
  assert.throws(f, (err: unknown) => err instanceof TensorSetError && err.problem === problem && pattern.test(err.message));
}

void test('checkTensorSet names the file and tensor of a missing, unexpected or mis-shaped tensor', () => {
  const source = 'x.safetensors';
  throwsProblem(() => checkTensorSet({ expected, found: found([['a.weight', [2, 3]]]), source, notes: { missing: 'method m' } }), 'missing', /^x\.safetensors: missing tensor 'head\.weight' \(method m\)$/);
  throwsProblem(() => checkTensorSet({ expected, found: found([['a.weight', [2, 3]], ['head.weight', [4, 3]], ['b', [1]]]), source }), 'unexpected', /^x\.safetensors: unexpected tensor 'b'$/);
  throwsProblem(() => checkTensorSet({ expected, found: found([['a.weight', [3, 2]], ['head.weight', [4, 3]]]), source, notes: { shape: 'the model needs' } }), 'shape', /tensor 'a\.weight' has shape \[3, 2\], the model needs \[2, 3\]/);
});

void test('checkTensorSet skips ignored names (checking a given shape) and returns absent optional ones', () => {
  const f = found([['a.weight', [2, 3]], ['pos', [1, 4]], ['inv_freq', [8]]]);
  const ignored = (n: string): boolean | number[] => (n === 'pos' ? [1, 4] : n === 'inv_freq');
  assert.deepEqual(checkTensorSet({ expected, found: f, source: 's', ignored, optional: (n) => n.startsWith('head.') }), { absent: ['head.weight'] });
  throwsProblem(() => checkTensorSet({ expected, found: found([['a.weight', [2, 3]], ['pos', [1, 5]]]), source: 's', ignored, optional: () => true }), 'shape', /'pos' has shape \[1, 5\], expected \[1, 4\]/);
});
