// `onelora train --preset NAME | --config FILE [--method SPEC] [--max-steps N] [--output DIR]
//  [--seed S] [--backend B] [--set key=value]...` and `onelora train --resume DIR [--max-steps N]`
// (docs/architecture.md#cli-conventions). The run flags live in ../run-flags.ts, shared with launch and coordinator.
import path from 'node:path';
import type { Command } from 'commander';
import { formatPlan, planRun } from '../../train/plan.js';
import { train } from '../../train/trainer.js';
import { interruptible } from '../interrupt.js';
import { addRunFlags, defaultOutput, RESUME_HELP, resolveRunConfig, resumeCommand, type RunFlags } from '../run-flags.js';
import { action, printResult } from '../run.js';
import { addDashboardFlags, withDashboard, type DashboardFlags } from './dashboard.js';
import { formatSummary } from '../summary.js';

export function registerTrain(program: Command): void {
  addDashboardFlags(addRunFlags(program.command('train').description('fine-tune a model with a PEFT method in this process'))
    .option('--resume <dir>', RESUME_HELP)
    .option('--dry-run', 'check the config, model and data this machine can see and print the plan; train nothing'))
    .action(action(async (f: RunFlags & DashboardFlags & { dryRun?: boolean }) => {
      const cfg = resolveRunConfig(f);
      const output = defaultOutput(f, cfg);
      if (f.dryRun) {
        const plan = await planRun(cfg, output);
        printResult(!!f.json, plan, formatPlan(plan));
        return;
      }
      const summary = await withDashboard(f, output, `train ${path.basename(path.resolve(output))}`, () => interruptible(output, resumeCommand('train', output, f), (signal) =>
        train(cfg, { output, resume: !!f.resume, overwrite: !!f.overwrite, maxSteps: f.maxSteps, backend: f.backend, tensorboard: f.tensorboard, signal })));
      printResult(!!f.json, summary, formatSummary(summary));
    }));
}
