// The `onelora` command line (docs/architecture.md#cli-conventions). Each subcommand lives in src/cli/commands/ and is
// registered from this explicit list (docs/internals.md#explicit-registries: no side-effect imports).
import { Command, CommanderError } from 'commander';
import { registerBench } from './commands/bench.js';
import { registerDashboard } from './commands/dashboard.js';
import { registerData } from './commands/data.js';
import { registerDepth } from './commands/depth.js';
import { registerBenchAllreduce, registerCoordinator, registerLaunch, registerWorker } from './commands/distributed.js';
import { registerDeploy } from './commands/deploy.js';
import { registerDoctor } from './commands/doctor.js';
import { registerEval } from './commands/eval.js';
import { registerGenerate } from './commands/generate.js';
import { registerMerge } from './commands/merge.js';
import { registerParams } from './commands/params.js';
import { registerPlot } from './commands/plot.js';
import { registerPredict } from './commands/predict.js';
import { registerPresets } from './commands/presets.js';
import { registerSample } from './commands/sample.js';
import { registerTrain } from './commands/train.js';
import { registerVae } from './commands/vae.js';
import { installPath } from '../install.js';
import { readJsonObject } from '../json-file.js';
import { ditAdapterTranslation } from '../models/dit-adapter.js';
import { loadAdapter } from '../peft/adapter-io.js';

const pkg = readJsonObject(installPath('package.json')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('onelora')
    .description('1LoRA and the paper\'s PEFT baselines on TensorFlow.js, across many worker processes')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride();
  // sample gets the PEFT loader here, so the DiT command does not import the adapter library.
  const sample = (p: Command): void => registerSample(p, { applyAdapter: (model, dir) => loadAdapter(dir, model, ditAdapterTranslation(model.config.depth)) });
  for (const register of [registerTrain, registerPresets, registerData, registerParams, registerGenerate, registerPredict, registerDepth, registerMerge, sample, registerVae, registerEval, registerPlot, registerBench, registerBenchAllreduce, registerLaunch, registerCoordinator, registerWorker, registerDeploy, registerDashboard, registerDoctor]) register(program);
  return program;
}

/** Parses process.argv and runs the command; bin/onelora.js calls it. */
export async function runCli(argv: readonly string[] = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; every usage error is the user's: exit 2.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    throw err;
  }
}

