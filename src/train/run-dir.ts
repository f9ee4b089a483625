// The run directory's life cycle (docs/architecture.md#run-outputs), one set of rules for `train`,
// `launch` and `coordinator`: a fresh run never writes into a directory that holds a run (unless
// --overwrite clears that run's files, and only those), and a resume first cuts metrics.jsonl back to
// its checkpoint, so the lines a process logged past its last checkpoint before it died are not
// there twice once the steps are trained again.
import fs from 'node:fs';
import path from 'node:path';
import { messageOf, UserError } from '../errors.js';

/** What onelora writes into --output (docs/architecture.md#run-outputs): --overwrite deletes these and nothing else. */
const RUN_FILES = ['config.yaml', 'inputs.json', 'metrics.jsonl', 'summary.json', 'checkpoints', 'adapter', 'tensorboard', 'curves.png'] as const;
/** Temporary files of an atomic write (writeFileAtomic, publishAdapter) a killed process left behind. */
const LEFTOVER = /^(config\.yaml|inputs\.json|summary\.json|metrics\.jsonl|adapter)\.tmp-\d+$/;

/**
 * Makes `output` ready for a fresh run: refused with exit 2 when it holds one (naming the ways
 * out), or cleared of that run's files with `overwrite`. `resumeHint` is how this command continues
 * a run (`--resume DIR` for train and launch, `--resume` for coordinator).
 */
export function claimOutput(output: string, o: { overwrite?: boolean; resumeHint?: string } = {}): void {
  const found = RUN_FILES.filter((f) => fs.existsSync(path.join(output, f)));
  if (found.length > 0 && !o.overwrite) {
    throw new UserError(
      `${output} already holds a run (${found.join(', ')}); nothing was changed. ` +
        `Continue it with ${o.resumeHint ?? `--resume ${output}`}, or start a new run with --output NEW_DIR, ` +
        `or --overwrite to delete this run's files (${RUN_FILES.join(', ')}) first`,
    );
  }
  for (const f of found) fs.rmSync(path.join(output, f), { recursive: true, force: true });
  if (fs.existsSync(output)) {
    for (const f of fs.readdirSync(output).filter((n) => LEFTOVER.test(n))) fs.rmSync(path.join(output, f), { recursive: true, force: true });
  }
  fs.mkdirSync(output, { recursive: true });
}

/**
 * Exit 2 naming the directory when `output` (or, while it does not exist, the nearest parent that
 * does, where it would be made) cannot be written: checked before anything starts, so a read-only
 * volume is one clear message instead of an error halfway through a run (or a hang).
 */
export function checkWritable(output: string, flag = '--output'): void {
  const want = path.resolve(output);
  let dir = want;
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const probe = path.join(dir, `.onelora-write-check-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? messageOf(err);
    const where = dir === want ? '' : ` (it does not exist, and its parent ${dir} is not writable)`;
    throw new UserError(`${flag} ${output}: the directory is not writable: ${code}${where}; give a writable directory`, { cause: err });
  }
}

type MetricsLine = { step: number; eval?: Record<string, number> };

function parseLine(line: string): MetricsLine | null {
  try {
    const m = JSON.parse(line) as MetricsLine;
    return typeof m.step === 'number' ? m : null;
  } catch {
    // A line cut short by a killed process (or the empty tail): not a record.
    return null;
  }
}

/**
 * Rewrites `output`/metrics.jsonl without the lines of steps after `step` (and a torn last line),
 * so steps trained again are logged once. Returns the run's own evaluation before training (the
 * step-0 eval line), which a resumed run's summary reports as its "before".
 */
export function trimMetrics(output: string, step: number): Record<string, number> | null {
  const file = path.join(output, 'metrics.jsonl');
  if (!fs.existsSync(file)) return null;
  const raw = fs.readFileSync(file, 'utf8');
  const kept = raw.split('\n').map(parseLine).filter((m): m is MetricsLine => m !== null && m.step <= step);
  // JSON.stringify(JSON.parse(line)) is the line itself, so an untouched log is not rewritten.
  const text = kept.map((m) => JSON.stringify(m) + '\n').join('');
  if (text !== raw) {
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  }
  return kept.find((m) => m.step === 0 && m.eval)?.eval ?? null;
}
