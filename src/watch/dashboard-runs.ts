// The dashboard's view of run directories on disk (docs/architecture.md#run-outputs): what a run
// has logged so far, read again incrementally as it grows. Both a live `train`/`launch` and
// `onelora dashboard RUN_DIR…` read the same files, so the page shows the same thing either way.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';

/** One metrics.jsonl step line, as logged (src/train/loop.ts stepLine). */
export type StepPoint = Record<string, unknown> & { step: number; loss: number; wall_s: number };
/** One evaluation line: `{step, eval: {…}}`. */
export interface EvalPoint {
  step: number;
  eval: Record<string, number>;
}

/** Everything the page shows of one run; `reset` replaces what the page held of it. */
export interface RunSnapshot {
  id: string;
  name: string;
  dir: string;
  config: string | null;
  summary: Record<string, unknown> | null;
  checkpoints: string[];
  latest: string | null;
  steps: StepPoint[];
  evals: EvalPoint[];
}

/** What changed since the last poll: appended lines, or the whole run again (`reset`). */
export type RunUpdate =
  | { id: string; reset: true; run: RunSnapshot }
  | { id: string; reset?: false; steps: StepPoint[]; evals: EvalPoint[]; config: string | null; checkpoints: string[]; latest: string | null; summary: Record<string, unknown> | null };

const isRun = (dir: string): boolean => ['metrics.jsonl', 'config.yaml'].some((f) => fs.existsSync(path.join(dir, f)));

/**
 * The run directories behind `dirs`: a run directory itself, or a folder of them (what
 * `bench methods` leaves: one run per method), each named so that the names differ.
 */
export function expandRunDirs(dirs: readonly string[], flag = 'RUN_DIR'): { dir: string; name: string }[] {
  const out: { dir: string; name: string }[] = [];
  for (const d of dirs) {
    if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new UserError(`${flag} ${d}: no such directory`);
    if (isRun(d)) {
      out.push({ dir: d, name: path.basename(path.resolve(d)) });
      continue;
    }
    const subs = fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory() && isRun(path.join(d, e.name))).map((e) => e.name).sort();
    if (subs.length === 0) throw new UserError(`${flag} ${d}: neither a run directory (no metrics.jsonl or config.yaml) nor a folder of them`);
    for (const s of subs) out.push({ dir: path.join(d, s), name: `${path.basename(path.resolve(d))}/${s}` });
  }
  // The same basename twice (runs/a/out, runs/b/out): tell them apart by the path given.
  const names = out.map((r) => r.name);
  return out.map((r) => (names.filter((n) => n === r.name).length > 1 ? { ...r, name: r.dir } : r));
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function readJson(file: string): Record<string, unknown> | null {
  const text = readText(file);
  if (text === null) return null;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null; // mid-write by another process: read again at the next poll
  }
}

function checkpointsOf(dir: string): { list: string[]; latest: string | null } {
  const ck = path.join(dir, 'checkpoints');
  const list = fs.existsSync(ck) ? fs.readdirSync(ck).filter((n) => /^step-\d+$/.test(n)).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5))) : [];
  return { list, latest: readText(path.join(ck, 'latest'))?.trim() || null };
}

/** A run directory read incrementally: metrics.jsonl from the byte it was last read to. */
export class RunTail {
  private offset = 0;
  private ino = -1;
  private partial = '';
  private steps: StepPoint[] = [];
  private evals: EvalPoint[] = [];
  private config: string | null = null;
  private summaryText: string | null = null;
  private checkpoints = JSON.stringify({ list: [], latest: null });

  constructor(
    readonly id: string,
    readonly name: string,
    readonly dir: string,
  ) {}

  snapshot(): RunSnapshot {
    const ck = checkpointsOf(this.dir);
    return {
      id: this.id, name: this.name, dir: path.resolve(this.dir), config: this.config, summary: this.summaryText ? readJson(path.join(this.dir, 'summary.json')) : null,
      checkpoints: ck.list, latest: ck.latest, steps: [...this.steps], evals: [...this.evals],
    };
  }

  /** Reads what is new; null when nothing changed. */
  poll(): RunUpdate | null {
    const file = path.join(this.dir, 'metrics.jsonl');
    let stat: fs.Stats | null = null;
    try {
      stat = fs.statSync(file);
    } catch {
      stat = null;
    }
    // A resume (or a group restored from disk) rewrites metrics.jsonl without its last steps
    // (src/train/run-dir.ts trimMetrics, a rename: a new inode): start over.
    let reset = false;
    if (stat && (stat.ino !== this.ino || stat.size < this.offset)) {
      reset = this.ino !== -1;
      this.ino = stat.ino;
      this.offset = 0;
      this.partial = '';
      this.steps = [];
      this.evals = [];
    }
    const steps: StepPoint[] = [];
    const evals: EvalPoint[] = [];
    if (stat && stat.size > this.offset) {
      const fd = fs.openSync(file, 'r');
      try {
        const buf = Buffer.alloc(stat.size - this.offset);
        const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
        this.offset += n;
        const lines = (this.partial + buf.subarray(0, n).toString('utf8')).split('\n');
        this.partial = lines.pop() ?? '';
        for (const line of lines) this.parse(line, steps, evals);
      } finally {
        fs.closeSync(fd);
      }
      this.steps.push(...steps);
      this.evals.push(...evals);
    }
    const config = readText(path.join(this.dir, 'config.yaml'));
    const summary = readText(path.join(this.dir, 'summary.json'));
    const ck = checkpointsOf(this.dir);
    const ckKey = JSON.stringify(ck);
    const changed = config !== this.config || summary !== this.summaryText || ckKey !== this.checkpoints;
    this.config = config;
    this.summaryText = summary;
    this.checkpoints = ckKey;
    if (reset) return { id: this.id, reset: true, run: this.snapshot() };
    if (!changed && steps.length === 0 && evals.length === 0) return null;
    return { id: this.id, steps, evals, config, checkpoints: ck.list, latest: ck.latest, summary: summary ? readJson(path.join(this.dir, 'summary.json')) : null };
  }

  private parse(line: string, steps: StepPoint[], evals: EvalPoint[]): void {
    if (!line.trim()) return;
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // a line torn by a killed process: trimMetrics drops it on the next resume
    }
    if (typeof m.step !== 'number') return;
    if (m.eval && typeof m.eval === 'object') evals.push({ step: m.step, eval: m.eval as Record<string, number> });
    else if (typeof m.loss === 'number') steps.push(m as StepPoint);
  }
}
