// `onelora doctor --json` as a process: every backend is listed, available or with the reason, the
// WebGPU adapter (or why there is none), wasm's SIMD/threads state, and a matmul rate per available one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import type { DoctorReport } from '../../src/cli/commands/doctor.js';

const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'onelora.js');

test('doctor --json reports node, each backend, the adapter, wasm and matmul GFLOP/s', () => {
  const r = spawnSync(process.execPath, [BIN, 'doctor', '--json', '--seconds', '0.2'], { encoding: 'utf8', timeout: 180_000, env: { ...process.env, ONELORA_LOG: 'warn', CUDA_VISIBLE_DEVICES: '0' } });
  assert.equal(r.status, 0, r.stderr);
  const d = JSON.parse(r.stdout.trim().split('\n').pop() as string) as DoctorReport;
  assert.equal(d.node, process.version);
  assert.equal(d.cuda_visible_devices, '0');
  assert.deepEqual(d.backends.map((b) => b.name), ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu']);
  for (const b of d.backends) {
    if (!b.available) assert.ok(b.reason && b.reason.length > 0, `${b.name} says why not`);
  }
  const wasm = d.backends.find((b) => b.name === 'wasm')!;
  assert.ok(wasm.available && wasm.matmul && wasm.matmul.gflops > 0, 'wasm is timed');
  assert.ok(!('error' in d.wasm) && typeof d.wasm.simd === 'boolean');
  const webgpu = d.backends.find((b) => b.name === 'webgpu')!;
  if ('error' in d.webgpu) assert.equal(webgpu.available, false);
  else {
    assert.ok(d.webgpu.description.length > 0 && d.webgpu.limits.maxStorageBufferBindingSize! > 0);
    // CUDA_VISIBLE_DEVICES=0 asks for the first hardware adapter; a software-only machine keeps the default.
    assert.match(d.webgpu.selection, /CUDA_VISIBLE_DEVICES=0|default/);
    if (webgpu.available) assert.ok(webgpu.matmul && webgpu.matmul.gflops > 0);
  }
});
