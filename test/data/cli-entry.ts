// A commander program with only the data commands, exiting like src/cli/main.ts, so the data
// tests can check exit codes before the integrator registers the command in main.ts.
import { Command, CommanderError } from 'commander';
import { registerData } from '../../src/cli/commands/data.js';

const program = new Command('onelora').exitOverride();
registerData(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (!(err instanceof CommanderError)) throw err;
  process.exitCode = err.exitCode === 0 ? 0 : 2;
}
