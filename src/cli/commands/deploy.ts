// `onelora deploy render --config FILE --workers N --image IMAGE --out DIR` (docs/architecture.md#cli-conventions): a
// kustomize overlay for a run config on Kubernetes (docs/deploy.md).
import type { Command } from 'commander';
import { presetFile } from '../../config/index.js';
import { renderOverlay } from '../../deploy/render.js';
import { UserError } from '../../errors.js';
import { intFlag } from '../flags.js';
import { action } from '../run.js';

interface RenderFlags {
  config?: string;
  preset?: string;
  workers: number;
  image: string;
  out: string;
  name?: string;
  namespace?: string;
  gpusPerWorker: number;
  workerMemory?: string;
  base?: string;
  generateToken?: boolean;
  tlsSecret?: string;
  zmqCurve?: boolean;
  dryRun?: boolean;
}

export function registerDeploy(program: Command): void {
  const deploy = program.command('deploy').description('Kubernetes manifests for a run (docs/deploy.md)');
  deploy
    .command('render')
    .description('write a kustomize overlay (deploy/base + worker count, image, run config) for a run config')
    .option('--config <file>', 'run config YAML (docs/config.md); relative paths in it must lead to ../data/… (the data volume)')
    .option('--preset <name>', 'a preset from presets/NAME.yaml instead of --config (onelora presets lists them)')
    .requiredOption('--workers <n>', 'worker pods, one GPU process each', intFlag(1))
    .requiredOption('--image <image>', 'the onelora image, with a tag or digest (deploy/Dockerfile)')
    .requiredOption('--out <dir>', 'overlay directory to write')
    .option('--name <name>', 'run name: /data/runs/NAME and the onelora.io/run label (default: the config file name)')
    .option('--namespace <ns>', 'namespace for every object (default: kubectl\'s current one)')
    .option('--gpus-per-worker <n>', 'nvidia.com/gpu limit of each worker pod', intFlag(1), 1)
    .option('--worker-memory <size>', 'memory request = limit of each worker pod (default: by model preset, else the base\'s 32Gi)')
    .option('--base <path>', 'kustomize base to reference, relative to --out (default: deploy/base inside the checkout, else a copy in OUT/base)')
    .option('--generate-token', 'also write a random job token (job-token.env, git-ignored) and a Secret generator for it')
    .option('--tls-secret <name>', 'a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt: gRPC over mutual TLS in every pod (docs/deploy.md)')
    .option('--zmq-curve', 'CURVE-encrypt the workers\' ZeroMQ links (ONELORA_ZMQ_CURVE=1 in every pod)')
    .option('--dry-run', 'check everything and print the files instead of writing them')
    .action(action((opts: RenderFlags) => {
      if (!!opts.preset === !!opts.config) throw new UserError('give exactly one of --preset NAME or --config FILE');
      const config = opts.config ?? presetFile(opts.preset as string);
      process.stdout.write(renderOverlay({ ...opts, config, name: opts.name ?? opts.preset }));
    }));
}
