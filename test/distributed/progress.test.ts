// `launch` on a terminal: the coordinator's progress bar and its workers' log lines share one
// stderr. Real worker processes on loopback, the coordinator in this process with its stderr
// replaced by an 80-column terminal that records what it is sent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../../src/backend/select.js';
import { launch } from '../../coordinator/launcher.js';
import { tinyConfig, tinyLmRun, tmpDir } from '../train/helpers.js';

await initBackend('wasm');
const dir = await tinyLmRun();

/** What a terminal shows: each line's text after its last carriage return and erase. */
const visible = (raw: string): string[] => raw.replaceAll('\x1b[?25l', '').replaceAll('\x1b[?25h', '').split('\n').map((l) => l.split('\r\x1b[K').at(-1) as string);

test('launch on a terminal: workers\' lines print above the bar, never glued to it; one backend line for the group', async () => {
  const cfg = tinyConfig(dir, { batch: { global: 8, micro: 2 } }, ['distributed.allreduce_timeout_s=20', 'eval.every=2']);
  const stderr = process.stderr as NodeJS.WriteStream & { isTTY: boolean };
  const saved = { write: stderr.write, isTTY: stderr.isTTY, columns: stderr.columns };
  let raw = '';
  stderr.write = ((chunk: string | Uint8Array) => {
    raw += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof stderr.write;
  stderr.isTTY = true;
  stderr.columns = 80;
  let steps = 0;
  try {
    const r = await launch({ cfg, workers: 2, output: tmpDir('progress'), maxSteps: 3, backend: 'wasm', env: { ONELORA_LOG: 'info' }, heartbeatTimeoutMs: 20_000 });
    steps = r.summary.steps;
  } finally {
    stderr.write = saved.write;
    stderr.isTTY = saved.isTTY;
    stderr.columns = saved.columns;
  }
  assert.equal(steps, 3);
  const lines = visible(raw).filter(Boolean);
  const bars = lines.filter((l) => /^(train|eval) \d/.test(l));
  assert.ok(bars.length > 0, raw);
  for (const l of lines) {
    // (a log line may wrap: it is printed whole above the bar, which is redrawn below it)
    if (/^(train|eval) \d/.test(l)) {
      assert.match(l, /^(train|eval) [^[]*\d\d:\d\d<[\d:?]+$/, `a log line glued to the bar: '${l}'`);
      assert.ok(l.length <= 79, `the bar is longer than the terminal: '${l}'`);
    } else assert.ok(!/[█░]/.test(l), `the bar glued to a log line: '${l}'`);
  }
  assert.ok(lines.some((l) => /^\[rank [01]\] info \[worker\] rank [01] of 2/.test(l)), `the workers' lines come through the launcher:\n${lines.join('\n')}`);
  assert.deepEqual(lines.filter((l) => /\] backend /.test(l)), ['info [coordinator] backend wasm on all 2 workers backends=["wasm","wasm"]']);
});
