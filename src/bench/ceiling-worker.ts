// One process of `onelora bench scaling`'s matmul ceiling, forked with an IPC channel: it readies
// its backend, waits for "go" (so the N processes run at the same time), multiplies two 512×512
// matrices for `seconds` (the SIMD throughput that training steps are made of) and sends back its
// GFLOP/s; the parent sums over processes.
import { initBackend, tf } from '../backend/select.js';

export type CeilingReply = { type: 'ready' } | { type: 'result'; value: number } | { type: 'error'; message: string };

function matmulGflops(seconds: number): number {
  const n = 512;
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  for (let i = 0; i < 3; i++) tf.tidy(() => tf.matMul(a, b)).dataSync();
  const t0 = performance.now();
  let reps = 0;
  while (performance.now() - t0 < seconds * 1000) {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
    reps++;
  }
  const s = (performance.now() - t0) / 1000;
  tf.dispose([a, b]);
  return (2 * n ** 3 * reps) / s / 1e9;
}

async function main(): Promise<void> {
  const [seconds, backend] = process.argv.slice(2) as [string, string | undefined];
  await initBackend(backend || undefined);
  const send = (m: CeilingReply): void => void process.send?.(m);
  process.once('message', () => {
    try {
      send({ type: 'result', value: matmulGflops(Number(seconds)) });
    } catch (err) {
      send({ type: 'error', message: (err as Error).message });
    }
    process.disconnect?.();
  });
  send({ type: 'ready' });
}

void main();
