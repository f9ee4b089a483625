// Every command in docs/deploy.md is checked: `onelora deploy render` runs (with --dry-run);
// kubectl commands that work offline run with --dry-run=client; the others run against a
// kubeconfig whose server refuses connections, which proves kubectl parsed them (a wrong flag is
// a usage error before any connection), and the objects they name must exist in the overlays;
// docker and curl are checked against the Dockerfile and the Service. A command that matches no
// rule fails the test, so the page cannot grow an unchecked command.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Command } from 'commander';
import { registerDeploy } from '../../src/cli/commands/deploy.js';
import { tmpDir } from '../helpers.js';
import { IMAGE, ROOT } from './helpers.js';
import { k8sErrors, kustomize, type K8sObject } from './k8s.js';
import YAML from 'yaml';

/** Commands in the ```sh blocks of a Markdown file, continuation lines joined. */
function shellCommands(file: string): string[] {
  const out: string[] = [];
  const blocks = fs.readFileSync(file, 'utf8').split(/^```sh\n/m).slice(1).map((b) => b.split(/^```$/m)[0]!);
  for (const b of blocks) {
    for (const line of b.replace(/\\\n\s*/g, ' ').split('\n')) if (line.trim() && !line.trim().startsWith('#')) out.push(line.trim());
  }
  return out;
}

const tmp = tmpDir('deploy');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const kubeconfig = path.join(tmp, 'kubeconfig');
fs.writeFileSync(
  kubeconfig,
  YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'none', cluster: { server: 'https://127.0.0.1:1' } }], // port 1: nothing listens
    users: [{ name: 'u', user: { token: 'x' } }],
    contexts: [{ name: 'none', context: { cluster: 'none', user: 'u', namespace: 'onelora' } }],
    'current-context': 'none',
  }),
);

function kubectl(cmd: string, cwd = ROOT): { status: number | null; out: string } {
  const r = spawnSync('bash', ['-c', cmd], { cwd, encoding: 'utf8', timeout: 60_000, env: { ...process.env, KUBECONFIG: kubeconfig } });
  if (r.error) throw r.error;
  return { status: r.status, out: r.stdout + r.stderr };
}

/** Objects a kubectl command may name: the 16gpu overlay and the data loader. */
const objects: K8sObject[] = [
  ...kustomize(path.join(ROOT, 'deploy/overlays/16gpu')),
  ...YAML.parseAllDocuments(fs.readFileSync(path.join(ROOT, 'deploy/data-loader.yaml'), 'utf8')).map((d) => d.toJS() as K8sObject),
];
const labelValues = new Set(objects.flatMap((o) => Object.entries((o.metadata.labels ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`)));
const KIND = { job: 'Job', svc: 'Service', pod: 'Pod' } as const;

function checkNames(cmd: string): void {
  for (const m of cmd.matchAll(/\b(job|svc|pod)\/([\w-]+)/g)) {
    assert.ok(objects.some((o) => o.kind === KIND[m[1] as keyof typeof KIND] && o.metadata.name === m[2]), `${cmd}: no ${m[1]}/${m[2]} in the overlay`);
  }
  const del = /^kubectl delete (job|pod) (.+)$/.exec(cmd);
  for (const name of del ? del[2]!.split(' ') : []) {
    assert.ok(objects.some((o) => o.kind === KIND[del![1] as 'job' | 'pod'] && o.metadata.name === name), `${cmd}: no ${del![1]} ${name}`);
  }
  for (const sel of cmd.matchAll(/-l (\S+)/g)) {
    for (const pair of sel[1]!.split(',')) {
      if (pair.startsWith('batch.kubernetes.io/job-completion-index=')) continue; // set by the Job controller
      assert.ok(labelValues.has(pair), `${cmd}: no object labelled ${pair}`);
    }
  }
}

async function renderDry(cmd: string): Promise<void> {
  const args = cmd.split(/\s+/).slice(1);
  if (!args.includes('--dry-run')) args.push('--dry-run');
  const program = new Command('onelora').exitOverride();
  registerDeploy(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  const runnerExitCode = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  const cwd = process.cwd();
  try {
    process.chdir(ROOT);
    await program.parseAsync(['node', 'onelora', ...args]);
    assert.equal(process.exitCode ?? 0, 0, `${cmd} failed`);
  } finally {
    process.chdir(cwd);
    process.stdout.write = write;
    process.exitCode = runnerExitCode;
  }
  assert.match(out, /would write a kustomize overlay/);
}

type Rule = readonly [RegExp, (cmd: string) => void | Promise<void>];
const RULES: readonly Rule[] = [
  [/^onelora deploy render /, renderDry],
  [
    /^onelora data prepare /,
    (cmd) => {
      // Not runnable here (MetaMathQA is a download): its --out must be where the presets look.
      const out = /--out (\S+)/.exec(cmd)![1]!;
      const preset = YAML.parse(fs.readFileSync(path.join(ROOT, 'presets/llama2-7b-metamath.yaml'), 'utf8')) as { data: { train: string } };
      assert.equal(path.resolve(ROOT, out, 'train.arrow'), path.resolve(ROOT, 'presets', preset.data.train));
      assert.match(cmd, /--dataset metamath/);
      // Its flags exist, once the command is registered (src/cli/main.ts).
      const help = spawnSync(process.execPath, ['bin/onelora.js', 'data', 'prepare', '--help'], { cwd: ROOT, encoding: 'utf8' });
      if (help.status === 0) for (const flag of cmd.match(/--[\w-]+/g)!) assert.ok(help.stdout.includes(flag), `onelora data prepare has ${flag}`);
    },
  ],
  [
    /^docker (build|push) /,
    (cmd) => {
      const f = /-f (\S+)/.exec(cmd)?.[1];
      if (f) assert.ok(fs.existsSync(path.join(ROOT, f)), `${f} exists`);
      assert.ok(cmd.includes(IMAGE), `${cmd}: the image the committed overlays use (${IMAGE})`);
    },
  ],
  [
    /^curl /,
    (cmd) => {
      const port = Number(/localhost:(\d+)\//.exec(cmd)![1]);
      const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'onelora-coordinator')!.spec as { ports: { name: string; port: number }[] };
      assert.equal(svc.ports.find((p) => p.name === 'metrics')?.port, port);
    },
  ],
  [
    /^kubectl (create (namespace|secret)|config set-context) /,
    (cmd) => {
      const dry = cmd.startsWith('kubectl config') ? cmd : `${cmd} --dry-run=client -o yaml`;
      const r = kubectl(dry);
      assert.equal(r.status, 0, `${dry}\n${r.out}`);
      if (cmd.includes('create secret')) {
        const secret = YAML.parse(r.out) as K8sObject & { data: { token: string } };
        assert.deepEqual(k8sErrors(secret), []);
        assert.match(Buffer.from(secret.data.token, 'base64').toString(), /^[0-9a-f]{64}$/);
        assert.ok(objects.some((o) => JSON.stringify(o).includes(`"secretKeyRef":{"key":"token","name":"${secret.metadata.name}"}`)), 'the pods read this Secret');
      }
    },
  ],
  [
    /^kubectl /,
    (cmd) => {
      checkNames(cmd);
      for (const m of cmd.matchAll(/^kubectl apply -(k|f) (\S+)/g)) {
        const objs = m[1] === 'k' ? kustomize(path.join(ROOT, m[2]!)) : YAML.parseAllDocuments(fs.readFileSync(path.join(ROOT, m[2]!), 'utf8')).map((d) => d.toJS() as K8sObject);
        assert.deepEqual(objs.flatMap(k8sErrors), [], `${cmd}: what it applies is valid`);
      }
      // kubectl cp checks its local source before connecting: give it one.
      const cp = /^kubectl cp (\S+) /.exec(cmd);
      const cwd = cp ? tmp : ROOT;
      if (cp) fs.mkdirSync(path.join(tmp, cp[1]!), { recursive: true });
      const r = kubectl(cmd.replace(/--timeout=\S+/, '--timeout=1s'), cwd);
      assert.notEqual(r.status, 0);
      assert.match(r.out, /connection to the server 127\.0\.0\.1:1 was refused|dial tcp 127\.0\.0\.1:1/, `${cmd}: kubectl did not get as far as the server:\n${r.out}`);
    },
  ],
];

void describe('docs/deploy.md', () => {
  // The docs write `npx onelora …` (npm install puts no onelora on PATH); the rules match the command.
  const cmds = shellCommands(path.join(ROOT, 'docs/deploy.md'));
  const bare = (cmd: string): string => cmd.replace(/^npx (onelora )/, '$1');

  void it('shows the commands of the whole flow', () => {
    assert.ok(cmds.length >= 20, `${cmds.length} commands`);
    for (const must of ['docker build', 'kubectl create secret', 'kubectl cp', 'kubectl apply -k', 'kubectl logs', 'onelora deploy render']) {
      assert.ok(cmds.some((c) => bare(c).startsWith(must)), `a '${must}' command`);
    }
  });

  for (const cmd of cmds) {
    void it(cmd, async () => {
      assert.doesNotMatch(cmd, /^onelora /, 'write npx onelora: onelora is not on PATH after npm install');
      const rule = RULES.find(([re]) => re.test(bare(cmd)));
      assert.ok(rule, `no check for this command: add a rule to test/deploy/docs.test.ts`);
      await rule[1](bare(cmd));
    });
  }
});
