// The "rogue peer" round of the fault benchmark (npm run check:faults): a 2-worker job started by
// hand on the tiny LLaMA run, attacked while it trains by the independent clients of
// test/fixtures/hostile/ — forged CheckpointCommits (claimed rank 1, and rank 0 with the attacker's
// directory), a second Control stream for rank 1, a wrong-token flood, a routing-id squatter and
// 300 MiB frames on rank 0's ZeroMQ endpoint. Passed: the run completes, every attack was refused,
// and the adapter equals an undisturbed single-process run's.
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../../src/backend/select.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import type { RunConfig } from '../../src/config/index.js';
import { train } from '../../src/train/trainer.js';
import { logged, python, pythonUntilStopped, startCoordinator, startWorker } from '../fixtures/hostile/job.js';
import { tinyConfig, tinyLmRun } from '../train/helpers.js';

const TOKEN = 'rogue-round-token';
const STEPS = 3;

export interface FaultContext {
  workDir: string;
  round: number;
}

export interface FaultOutcome {
  passed: boolean;
  detectS?: number;
  exitS?: number;
  maxAdapterDiff?: number;
  detail?: string;
}

let setup: Promise<{ cfg: RunConfig; reference: Map<string, Float32Array> }> | null = null;

/** The tiny run and its single-process adapter, made once per process. */
function prepare(workDir: string): Promise<{ cfg: RunConfig; reference: Map<string, Float32Array> }> {
  setup ??= (async () => {
    await initBackend('wasm');
    const dir = await tinyLmRun();
    const cfg = tinyConfig(dir, { batch: { global: 4, micro: 2 } }, ['distributed.allreduce_timeout_s=20']);
    const out = path.join(workDir, 'rogue-reference');
    fs.rmSync(out, { recursive: true, force: true });
    await train(cfg, { output: out, maxSteps: STEPS, quiet: true });
    return { cfg, reference: adapter(out) };
  })();
  return setup;
}

function adapter(out: string): Map<string, Float32Array> {
  const t = readSafetensors(path.join(out, 'adapter', 'adapter_model.safetensors')).tensors;
  return new Map([...t].map(([k, v]) => [k, v.data as Float32Array]));
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let d = 0;
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y || y.length !== x.length) return Infinity;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  }
  return a.size === b.size ? d : Infinity;
}

export const rogueRound = {
  name: 'rogue peer (forged commits, ghost Control, token flood, id squat, 300 MiB frames)',
  async run(ctx: FaultContext): Promise<FaultOutcome> {
    const { cfg, reference } = await prepare(ctx.workDir);
    const output = path.join(ctx.workDir, `rogue-${ctx.round}`);
    fs.rmSync(output, { recursive: true, force: true });
    const fake = path.join(ctx.workDir, `rogue-${ctx.round}-forged`);
    fs.mkdirSync(path.join(fake, 'adapter'), { recursive: true });
    fs.writeFileSync(path.join(fake, 'adapter', 'adapter_model.safetensors'), 'FORGED');
    const { c, lines, stopCapture } = await startCoordinator({ cfg, workers: 2, output, token: TOKEN, maxSteps: STEPS });
    const target = `127.0.0.1:${c.port}`;
    const t0 = performance.now();
    const attackers: { stop(): Promise<unknown> }[] = [];
    // detection: the first refusal the coordinator logs
    let detected: number | null = null;
    const watch = setInterval(() => void (detected ??= lines.some((l) => /refused/.test(l)) ? performance.now() : null), 20);
    try {
      const forge = (rank: number, step: number) => pythonUntilStopped('grpc_client.py',
        ['forge-commit', '--target', target, '--token', TOKEN, '--rank', String(rank), '--step', String(step), '--path', fake, '--samples-seen', String(4 * step), '--seconds', '600', '--interval', '0.01']);
      attackers.push(forge(1, STEPS), forge(0, STEPS), forge(1, 2));
      attackers.push(pythonUntilStopped('grpc_client.py', ['ghost-control', '--target', target, '--token', TOKEN, '--rank', '1', '--generation', '1', '--seconds', '600', '--interval', '0.05']));
      const flood = python('grpc_client.py', ['flood', '--target', target, '--token', 'wrong', '--seconds', '5']);
      const ws = [0, 1].map((r) => startWorker(c.port, TOKEN, r));
      // rank 0's ZeroMQ endpoint, as it logs it: the squatter takes rank 1's id, the big frames follow
      await logged(ws[0]!, /ZeroMQ endpoint tcp:\/\/\S+/);
      const endpoint = /ZeroMQ endpoint (tcp:\/\/\S+)/.exec(ws[0]!.stderr())?.[1] ?? '';
      const zmqAttacks = Promise.all([
        python('zmq_peer.py', ['squat', '--endpoint', endpoint, '--id', '1', '--seconds', '8']),
        python('zmq_peer.py', ['big', '--endpoint', endpoint, '--id', '1', '--bytes', String(300 * 2 ** 20), '--count', '2', '--seconds', '2']),
      ]);
      const summary = await c.done;
      const done = performance.now();
      const codes = await Promise.all(ws.map((w) => w.exit));
      const exitS = (performance.now() - done) / 1000;
      await Promise.all([flood, zmqAttacks]);
      const seen = (await Promise.all(attackers.map((a) => a.stop()))) as { accepted?: number; commands?: Record<string, number> }[];
      const d = maxDiff(adapter(output), reference);
      const stolen = seen.reduce((n, s) => n + (s.accepted ?? 0) + (s.commands?.start ?? 0) + (s.commands?.stop ?? 0), 0);
      const passed = summary.steps === STEPS && codes.every((x) => x === 0) && stolen === 0 && d <= 1e-5;
      return {
        passed, exitS, maxAdapterDiff: d,
        detectS: detected === null ? undefined : (detected - t0) / 1000,
        detail: `${lines.filter((l) => /refused/.test(l)).length} refusal log lines; attacks that got through: ${stolen}; worker exits ${codes.join(', ')}`,
      };
    } catch (err) {
      return { passed: false, detail: (err as Error).message };
    } finally {
      clearInterval(watch);
      await Promise.all(attackers.map((a) => a.stop().catch(() => undefined)));
      stopCapture();
      await c.shutdown();
    }
  },
};
