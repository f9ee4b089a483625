// `onelora dashboard RUN_DIR [RUN_DIR…] [--port N] [--host H]` serves finished or running runs from
// disk, their curves overlaid; `--dashboard-port N [--dashboard-host H]` of `train` and `launch`
// serves the same page for the run in progress (src/watch/dashboard.ts).
import path from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../errors.js';
import { childLog } from '../../log.js';
import { expandRunDirs } from '../../watch/dashboard-runs.js';
import { Dashboard, dashboardToken } from '../../watch/dashboard.js';
import { intFlag } from '../flags.js';
import { action } from '../run.js';

const log = childLog('dashboard');

export interface DashboardFlags {
  dashboardPort?: number;
  dashboardHost?: string;
}

/** The flags `train` and `launch` share. */
export function addDashboardFlags(cmd: Command): Command {
  return cmd
    .option('--dashboard-port <port>', 'serve a live dashboard of the run on 127.0.0.1:PORT (0: a free port; the URL is logged)', intFlag(0))
    .option('--dashboard-host <host>', 'bind the dashboard to this address instead of 127.0.0.1 (beyond loopback it requires ONELORA_JOB_TOKEN)');
}

/**
 * Starts the dashboard of the run in `output` when --dashboard-port was given (before training, so a
 * taken port stops the command at once), runs `fn`, and closes it when the run ends.
 */
export async function withDashboard<T>(f: DashboardFlags, output: string, title: string, fn: (d: Dashboard | null) => Promise<T>): Promise<T> {
  if (f.dashboardPort === undefined) {
    if (f.dashboardHost !== undefined) throw new UserError(`--dashboard-host ${f.dashboardHost}: give --dashboard-port too (0 for a free port)`);
    return fn(null);
  }
  const host = f.dashboardHost ?? '127.0.0.1';
  const d = await Dashboard.start({
    runs: [{ dir: output, name: path.basename(path.resolve(output)) }], port: f.dashboardPort, host, token: dashboardToken(host, '--dashboard-host'),
    portFlag: '--dashboard-port', title,
  });
  log.info({ url: d.url }, `dashboard at ${d.url}`);
  try {
    return await fn(d);
  } finally {
    await d.close();
  }
}

export function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description('serve the curves, config and checkpoints of finished or running runs in the browser (several runs overlaid; a folder of runs, as bench methods leaves, counts as its runs)')
    .argument('<run_dir...>', 'run directories (--output of train or launch), or folders of them')
    .option('--port <port>', 'port on 127.0.0.1 (0: a free one)', intFlag(0), 0)
    .option('--host <host>', 'bind to this address instead of 127.0.0.1 (beyond loopback it requires ONELORA_JOB_TOKEN)')
    .action(action(async (dirs: string[], o: { port: number; host?: string }) => {
      const host = o.host ?? '127.0.0.1';
      const runs = expandRunDirs(dirs);
      const d = await Dashboard.start({ runs, port: o.port, host, token: dashboardToken(host, '--host'), portFlag: '--port', title: runs.map((r) => r.name).join(' · ') });
      // The URL on a line of its own on stdout, for scripts; Ctrl-C stops serving.
      process.stdout.write(`${d.url}\n`);
      log.info(`serving ${runs.length} run(s) until Ctrl-C`);
      await new Promise<void>((resolve) => {
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve());
      });
      await d.close();
    }));
}
