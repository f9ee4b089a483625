// `npm run check:faults [-- --rounds N] [--only a,b]` (a benchmark: it prints, it asserts nothing):
// N rounds of each fault on the demo preset with real `onelora` processes — kill -9 of a worker,
// kill -9 of the whole `launch` then `launch --resume`, kill -9 halfway through a checkpoint
// write, SIGSTOP of a worker past the heartbeat timeout, and a partition of one worker's host
// (network namespaces made here, iptables DROP) healed or not. Per fault: passed/N, seconds from
// the fault to the first log line that names it (detect), from the fault to the last process of
// the job exiting (exit), and the largest adapter difference against an uninterrupted run.
// A round is an object with a name and run(ctx); a new fault is one more entry in ROUNDS.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, toYaml } from '../../src/config/index.js';
import { alive, tmpDir } from '../helpers.js';
import { makeNet, netnsUnavailable } from './netns.js';
import { adapterDiff, allExit, manualJob, start, stepsLogged, until, type Proc } from './procs.js';
import { rogueRound } from './rogue-peer.js';

interface RoundContext {
  workDir: string;
  round: number;
}

interface RoundResult {
  passed: boolean;
  detectS?: number;
  exitS?: number;
  maxAdapterDiff?: number;
  detail?: string;
}

interface FaultRound {
  name: string;
  run(ctx: RoundContext): Promise<RoundResult>;
}

const { values: flags } = parseArgs({ options: { rounds: { type: 'string', default: '1' }, only: { type: 'string' }, json: { type: 'boolean' } } });
const ROUNDS_N = Number(flags.rounds);
const STEPS = 6;
const HB_S = 10;
/** Same world size, same batches: a recovered run must equal the uninterrupted one to float rounding. */
const SAME = 1e-5;
const TOKEN = 'check-faults-token';

const root = tmpDir('faults');
const cfgFile = path.join(root, 'demo.yaml');
fs.writeFileSync(cfgFile, toYaml(loadConfig(new URL('../../presets/demo.yaml', import.meta.url).pathname, [
  'eval.generate=false', 'eval.max_batches=1', 'checkpoint.every=2', `distributed.heartbeat_timeout_s=${HB_S}`, 'distributed.form_timeout_s=30',
  'distributed.allreduce_timeout_s=30', 'distributed.workers=2',
])));

const secs = (from: number, to: number | null): number | undefined => (to === null ? undefined : Number(((to - from) / 1000).toFixed(1)));

function launchProc(out: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Proc {
  return start('launch', ['launch', '--config', cfgFile, '--workers', '2', '--output', out, '--max-steps', String(STEPS), '--backend', 'wasm', ...extra], { ONELORA_LOG: 'info', ...env });
}

let reference: string | null = null;
/** The uninterrupted run every recovered one is compared with (made once). */
async function referenceRun(): Promise<string> {
  if (reference) return reference;
  const out = path.join(root, 'reference');
  const p = launchProc(out);
  const code = await p.exit;
  if (code !== 0) throw new Error(`the uninterrupted run failed (exit ${code}):\n${p.stderr().slice(-2000)}`);
  return (reference = out);
}

/** Pids and ranks of a launcher's worker processes (children whose argv has --rank R). */
function workersOf(pid: number): { pid: number; rank: number }[] {
  const file = `/proc/${pid}/task/${pid}/children`;
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number).flatMap((c) => {
    const argv = fs.existsSync(`/proc/${c}/cmdline`) ? fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0') : [];
    const i = argv.indexOf('--rank');
    return i >= 0 ? [{ pid: c, rank: Number(argv[i + 1]) }] : [];
  });
}


/** A launch whose worker dies by ONELORA_TEST_FAULT (the marker file's mtime is the moment of the kill). */
async function injected(ctx: RoundContext, fault: string, detect: RegExp): Promise<RoundResult> {
  const out = path.join(ctx.workDir, 'out');
  const marker = path.join(ctx.workDir, 'fired');
  const p = launchProc(out, [], { ONELORA_TEST_FAULT: `${fault}:${marker}` });
  const code = await p.exit;
  if (!fs.existsSync(marker)) return { passed: false, detail: 'the fault never fired' };
  const at = fs.statSync(marker).mtimeMs;
  const diff = code === 0 ? adapterDiff(out, await referenceRun()) : undefined;
  return { passed: code === 0 && diff !== undefined && diff <= SAME, detectS: secs(at, p.lineAt(detect)), exitS: secs(at, p.exitedAt), maxAdapterDiff: diff, detail: code === 0 ? undefined : p.stderr().slice(-500) };
}

const killWorker: FaultRound = { name: 'kill -9 worker', run: (ctx) => injected(ctx, 'kill:1:3', /worker 1 killed by SIGKILL/) };
const killInCheckpoint: FaultRound = { name: 'kill -9 during checkpoint', run: (ctx) => injected(ctx, 'kill-in-checkpoint:0:4', /worker 0 killed by SIGKILL/) };

const killLaunch: FaultRound = {
  name: 'kill -9 launch + --resume',
  async run(ctx) {
    const out = path.join(ctx.workDir, 'out');
    const p = launchProc(out);
    if (!(await until(() => stepsLogged(out) >= 3 || p.exitedAt !== null, 300_000)) || p.exitedAt !== null) return { passed: false, detail: `never reached step 3: ${p.stderr().slice(-500)}` };
    const ws = workersOf(p.child.pid as number);
    const at = Date.now();
    p.child.kill('SIGKILL');
    // Orphaned, the workers must notice that their coordinator is gone and exit by themselves.
    const gone = await until(() => ws.every((w) => !alive(w.pid)), 120_000);
    const exitS = secs(at, Date.now());
    for (const w of ws) if (alive(w.pid)) process.kill(w.pid, 'SIGKILL');
    const r = start('resume', ['launch', '--resume', out, '--max-steps', String(STEPS), '--backend', 'wasm'], { ONELORA_LOG: 'info' });
    const code = await r.exit;
    const diff = code === 0 ? adapterDiff(out, await referenceRun()) : undefined;
    return { passed: gone && code === 0 && diff !== undefined && diff <= SAME, exitS, maxAdapterDiff: diff, detail: gone ? (code === 0 ? undefined : r.stderr().slice(-500)) : 'orphaned workers still alive 120 s after the kill' };
  },
};

const sigstop: FaultRound = {
  name: `SIGSTOP worker ${HB_S + 10} s`,
  async run(ctx) {
    const out = path.join(ctx.workDir, 'out');
    const p = launchProc(out);
    if (!(await until(() => stepsLogged(out) >= 2 || p.exitedAt !== null, 300_000)) || p.exitedAt !== null) return { passed: false, detail: `never reached step 2: ${p.stderr().slice(-500)}` };
    const w = workersOf(p.child.pid as number).find((x) => x.rank === 1);
    if (!w) return { passed: false, detail: 'no rank 1 process found' };
    const at = Date.now();
    process.kill(w.pid, 'SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, (HB_S + 10) * 1000));
    process.kill(w.pid, 'SIGCONT');
    const code = await p.exit;
    const diff = code === 0 ? adapterDiff(out, await referenceRun()) : undefined;
    return { passed: code === 0 && diff !== undefined && diff <= SAME, detectS: secs(at, p.lineAt(/rank 1 sent no heartbeat|from rank 1 after/)), exitS: secs(at, p.exitedAt), maxAdapterDiff: diff, detail: code === 0 ? undefined : p.stderr().slice(-500) };
  },
};

function partition(healAfterS: number | null): FaultRound {
  return {
    name: healAfterS === null ? 'partition unhealed' : `partition healed after ${healAfterS} s`,
    async run(ctx) {
      const why = netnsUnavailable();
      if (why) return { passed: false, detail: `skipped: ${why}` };
      const net = makeNet(2);
      try {
        const out = path.join(ctx.workDir, 'out');
        const job = manualJob(net, cfgFile, out, { token: TOKEN, maxSteps: STEPS });
        if (!(await until(() => stepsLogged(out) >= 2 || job.all.some((x) => x.exitedAt !== null), 300_000)) || job.all.some((x) => x.exitedAt !== null)) {
          await allExit(job.all, 1000);
          return { passed: false, detail: `never reached step 2: ${job.coordinator.stderr().slice(-500)}` };
        }
        const at = Date.now();
        net.partition(net.hosts[1]!);
        if (healAfterS !== null) {
          await new Promise((resolve) => setTimeout(resolve, healAfterS * 1000));
          net.heal(net.hosts[1]!);
        }
        const left = await allExit(job.all, 300_000);
        const detectS = secs(at, job.coordinator.lineAt(/rank 1 sent no heartbeat|from rank 1 after/));
        const exitS = secs(at, Math.max(...job.all.map((x) => x.exitedAt ?? Date.now())));
        const codes = await Promise.all(job.all.map((x) => x.exit));
        if (healAfterS === null) {
          const named = /lost the coordinator at/.test(job.workers[1]!.stderr());
          return { passed: left.length === 0 && codes.every((c) => c === 1) && named, detectS, exitS, detail: left.length ? `still alive: ${left.join(', ')}` : named ? undefined : `exit codes ${codes.join(', ')}` };
        }
        const diff = codes.every((c) => c === 0) ? adapterDiff(out, await referenceRun()) : undefined;
        return { passed: left.length === 0 && diff !== undefined && diff <= SAME, detectS, exitS, maxAdapterDiff: diff, detail: diff === undefined ? `exit codes ${codes.join(', ')}: ${job.coordinator.stderr().slice(-500)}` : undefined };
      } finally {
        net.destroy();
      }
    },
  };
}

const ROUNDS: FaultRound[] = [killWorker, killLaunch, killInCheckpoint, sigstop, partition(HB_S * 2), partition(null), rogueRound];

const only = flags.only?.split(',').map((s) => s.trim());
const rows: Record<string, unknown>[] = [];
for (const f of ROUNDS.filter((r) => !only || only.some((o) => r.name.startsWith(o)))) {
  const results: RoundResult[] = [];
  for (let round = 1; round <= ROUNDS_N; round++) {
    const workDir = tmpDir('fault-round');
    const t0 = Date.now();
    const r = await f.run({ workDir, round }).catch((err: unknown): RoundResult => ({ passed: false, detail: String(err) }));
    results.push(r);
    process.stderr.write(`check:faults ${f.name} round ${round}: ${r.passed ? 'passed' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(0)} s ${JSON.stringify(r)}\n`);
    if (r.passed) fs.rmSync(workDir, { recursive: true, force: true });
  }
  const stat = (k: 'detectS' | 'exitS' | 'maxAdapterDiff'): number | null => {
    const v = results.map((r) => r[k]).filter((x): x is number => x !== undefined);
    return v.length ? Math.max(...v) : null;
  };
  rows.push({ fault: f.name, passed: `${results.filter((r) => r.passed).length}/${ROUNDS_N}`, detect_s_max: stat('detectS'), exit_s_max: stat('exitS'), max_adapter_diff: stat('maxAdapterDiff') });
}
if (flags.json) process.stdout.write(JSON.stringify({ rows }) + '\n');
else {
  process.stdout.write(`${'fault'.padEnd(30)} passed  detect_s  exit_s  max |Δ adapter|\n`);
  for (const r of rows) process.stdout.write(`${String(r.fault).padEnd(30)} ${String(r.passed).padEnd(7)} ${String(r.detect_s_max ?? '-').padEnd(9)} ${String(r.exit_s_max ?? '-').padEnd(7)} ${r.max_adapter_diff ?? '-'}\n`);
}
