// The webgpu backend's own rules: an oversized tensor is a UserError naming it, its bytes and the
// adapter's limit; launch gives each worker one entry of CUDA_VISIBLE_DEVICES.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { workerDevice } from '../../coordinator/launcher.js';
import { initBackend, tf } from '../../src/backend/select.js';
import { activeAdapter, checkFitsDevice, listAdapterNames } from '../../src/backend/webgpu.js';
import { UserError } from '../../src/errors.js';
import { throwsUser } from '../helpers.js';

let missing: string | null = null;
try {
  await initBackend('webgpu');
} catch (err) {
  if (!(err instanceof UserError)) throw err;
  missing = err.message;
}
const skip = missing && process.env.ONELORA_REQUIRE_WEBGPU !== '1' ? `webgpu: ${missing}` : false;

test('a tensor over maxStorageBufferBindingSize is a UserError naming it, its bytes and the limit', { skip }, async () => {
  const adapter = activeAdapter();
  assert.ok(adapter, `webgpu did not run: ${missing}`);
  const limit = adapter.limits.maxStorageBufferBindingSize as number;
  const n = limit / 4 + 16;
  throwsUser(() => checkFitsDevice('model.embed_tokens.weight', [n, 1]), 'model.embed_tokens.weight', String(n * 4), `maxStorageBufferBindingSize of ${limit} bytes`);
  // Any tensor the backend allocates, not only named weights: caught before Dawn sees the buffer.
  throwsUser(() => tf.zeros([n]), `[${n}]`, `${limit} bytes`);
  checkFitsDevice('small', [16, 16]);
  assert.ok((await listAdapterNames()).length >= 1, 'Dawn lists the adapter it gave');
  assert.ok(adapter.description.length > 0 && typeof adapter.software === 'boolean');
});

test('launch gives rank r entry r mod n of CUDA_VISIBLE_DEVICES, and nothing when it is unset', () => {
  assert.deepEqual([0, 1, 2].map((r) => workerDevice(r, '2,3')), [{ CUDA_VISIBLE_DEVICES: '2' }, { CUDA_VISIBLE_DEVICES: '3' }, { CUDA_VISIBLE_DEVICES: '2' }]);
  assert.deepEqual(workerDevice(1, undefined), {});
  assert.deepEqual(workerDevice(1, ''), {});
});
