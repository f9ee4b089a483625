// Ctrl-C (SIGINT) and SIGTERM in the commands that train (`train`, `launch`, `coordinator`): the
// first asks the run to stop at the next step boundary with a checkpoint of that step (the trainer
// and the coordinator honour the AbortSignal); a second stops at once. Either way the terminal gets
// its cursor and line wrap back, the user is told the exact command that resumes, and the exit code
// is 130 (128 + SIGINT, what a shell reports for a process Ctrl-C ended).
import path from 'node:path';
import { latestCheckpoint } from '../checkpoint/checkpoint.js';
import { InterruptedError } from '../errors.js';
import { log } from '../log.js';
import { restoreTerminal } from '../train/metrics.js';

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** A path under the working directory as the user would write it; anything else absolute. */
function shown(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
}

function resumeLine(step: number, checkpoint: string | null, resume: string): string {
  return checkpoint
    ? `it resumes from step ${step} (${shown(checkpoint)}) with:\n  ${resume}`
    : 'there is nothing to resume: run the same command again with --overwrite';
}

/**
 * Runs `fn` with a signal the first SIGINT/SIGTERM aborts. `output` is the run directory and
 * `resume` the command line that continues it, both for the message.
 */
export async function interruptible<T>(output: string, resume: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!ac.signal.aborted) {
      log.warn(`${sig}: stopping after the step in flight and checkpointing it (${sig === 'SIGINT' ? 'Ctrl-C' : sig} again stops at once)`);
      ac.abort();
      return;
    }
    restoreTerminal();
    const latest = latestCheckpoint(output);
    const step = latest ? Number(/step-(\d+)$/.exec(path.basename(latest))?.[1] ?? 0) : 0;
    process.stderr.write(`onelora: interrupted again: stopped at once, without a checkpoint of the step in flight; ${resumeLine(step, latest, resume)}\n`);
    process.exit(130);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('exit', restoreTerminal);
  try {
    return await fn(ac.signal);
  } catch (err) {
    if (!(err instanceof InterruptedError)) throw err;
    throw new InterruptedError(`${err.message}; ${resumeLine(err.step, err.checkpoint, resume)}`, err.step, err.checkpoint);
  } finally {
    for (const s of SIGNALS) process.removeListener(s, onSignal);
    process.removeListener('exit', restoreTerminal);
  }
}
