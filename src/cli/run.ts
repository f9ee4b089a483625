// The one place where commands turn errors into exit codes (docs/architecture.md#cli-conventions): 2 for anything the user
// supplied, 1 for a failure while running. Results go to stdout; logs to stderr.
import { exitCodeOf, InterruptedError, messageOf, UserError } from '../errors.js';
import { log } from '../log.js';

/** Prints a result: with --json one JSON object on the last line, otherwise the human text. */
export function printResult(json: boolean, obj: unknown, human?: string): void {
  if (json) process.stdout.write(JSON.stringify(obj) + '\n');
  else process.stdout.write((human ?? JSON.stringify(obj, null, 2)) + '\n');
}

/** Wraps a command action: errors become a message on stderr and the right exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const code = exitCodeOf(err);
      if (code === 1 && err instanceof Error && process.env.ONELORA_LOG === 'debug') log.error({ stack: err.stack }, 'failure');
      process.stderr.write(`onelora: ${err instanceof UserError || err instanceof InterruptedError ? '' : 'error: '}${messageOf(err)}\n`);
      process.exitCode = code;
    }
  };
}
