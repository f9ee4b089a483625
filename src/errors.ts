// Errors the CLI maps to exit codes (docs/architecture.md#cli-conventions): 2 when something the user supplied is wrong,
// 1 for a failure while running.

/** Something the user supplied is wrong: a flag, a config key, an input row, a model or adapter file. */
export class UserError extends Error {
  readonly exitCode = 2;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}

/** The method finds nothing to train in this model (`norms` on a DiT, whose LayerNorms have no affine parameters). */
export class NothingToTrainError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'NothingToTrainError';
  }
}

/** A failure while running (a dead peer, a NaN loss, a timeout): exit code 1. */
export class RunError extends Error {
  readonly exitCode = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RunError';
  }
}

/**
 * Writing a run file failed on this machine's disk (ENOSPC, EROFS, EIO…): exit code 1, naming the
 * file. A distributed job stops at once on it instead of counting it as a lost worker (a restarted
 * worker would meet the same full disk).
 */
export class DiskWriteError extends RunError {
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    super(`cannot write ${file}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'DiskWriteError';
  }
}

/** A failed system call (it carries errno's code and the call's name), not a bug. */
export function isErrno(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** Runs `write`; a failed system call in it becomes a DiskWriteError naming `file` (Node's own errors name no path for write()). */
export function writingTo<T>(file: string, write: () => T): T {
  try {
    return write();
  } catch (err) {
    throw isErrno(err) ? new DiskWriteError(file, err) : err;
  }
}

/**
 * The run was stopped by SIGINT/SIGTERM (Ctrl-C) at a step boundary: exit code 130, 128 + SIGINT
 * as a shell reports it. `step` is the last finished step; `checkpoint` its checkpoint (null when
 * no step had finished).
 */
export class InterruptedError extends Error {
  readonly exitCode = 130;
  constructor(
    message: string,
    readonly step: number,
    readonly checkpoint: string | null,
  ) {
    super(message);
    this.name = 'InterruptedError';
  }
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof InterruptedError) return err.exitCode;
  return err instanceof UserError ? 2 : 1;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
