// deploy/Dockerfile, checked statically: there is no Docker engine on these machines
// (docs/architecture.md#what-is-checked-where), so nothing here builds or runs the image. What a build would catch first is checked:
// the base, the lockfile install, the non-root user, the entrypoint and the files it copies.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { ROOT } from './helpers.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

/** Instructions with continuation lines joined and comments dropped (the Dockerfile grammar, enough of it). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (buf === '' && (line === '' || line.startsWith('#'))) return;
    if (buf !== '' && line.startsWith('#')) return;
    if (buf === '') start = i + 1;
    buf += (buf ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (!line.endsWith('\\')) {
      const m = /^(\w+)\s+(.*)$/.exec(buf)!;
      out.push({ op: m[1]!.toUpperCase(), args: m[2]!, line: start });
      buf = '';
    }
  });
  return out;
}

const text = fs.readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8');
const ins = parseDockerfile(text);
const argDefault = (name: string): string | undefined => ins.find((i) => i.op === 'ARG' && i.args.startsWith(`${name}=`))?.args.slice(name.length + 1);
const stages = (): Instruction[][] => {
  const s: Instruction[][] = [];
  for (const i of ins) {
    if (i.op === 'FROM') s.push([]);
    s.at(-1)?.push(i);
  }
  return s;
};

void describe('deploy/Dockerfile (static)', () => {
  void it('builds on a CUDA 11.x + cuDNN 8 runtime image, which libtensorflow 2.9 (tfjs-node-gpu 4.22) needs', () => {
    const base = argDefault('BASE_IMAGE');
    assert.match(base ?? '', /^nvidia\/cuda:11\.\d+(\.\d+)?-cudnn8-runtime-ubuntu\d\d\.\d\d$/);
    const froms = ins.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]);
    assert.ok(froms.length >= 1 && froms.every((f) => f === '${BASE_IMAGE}'), `every stage FROM \${BASE_IMAGE}: ${froms.join(', ')}`);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string>; engines: { node: string } };
    assert.equal(pkg.optionalDependencies['@tensorflow/tfjs-node-gpu'], '4.22.0', 'the CUDA base matches tfjs-node-gpu 4.22 (libtensorflow 2.9)');
    assert.match(argDefault('NODE_VERSION') ?? '', /^20\.\d+\.\d+$/, 'a pinned Node 20');
  });

  void it('installs exactly the lockfile, with the GPU optional dependency, before copying the sources', () => {
    const build = stages()[0]!;
    const copyLock = build.findIndex((i) => i.op === 'COPY' && /\bpackage\.json\b/.test(i.args) && /\bpackage-lock\.json\b/.test(i.args));
    const npmCi = build.findIndex((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args));
    assert.ok(copyLock >= 0, 'COPY package.json package-lock.json');
    assert.ok(npmCi > copyLock, 'npm ci after copying the lockfile');
    assert.match(build[npmCi]!.args, /--include=optional/);
    assert.match(build[npmCi]!.args, /tfjs-node-gpu\/deps/, 'fails the build when libtensorflow did not download');
    assert.equal(ins.some((i) => i.op === 'RUN' && /\bnpm (install|i)\b/.test(i.args)), false, 'no npm install (it may change the lockfile)');
    assert.match(text, /sha256sum -c/, 'the Node tarball is checksummed');
    assert.ok(fs.existsSync(path.join(ROOT, 'package-lock.json')));
  });

  void it('runs as the non-root uid the pods require, with the GPU backend and `node bin/onelora.js` as entrypoint', () => {
    const final = stages().at(-1)!;
    const users = final.filter((i) => i.op === 'USER').map((i) => i.args);
    assert.ok(users.length > 0, 'a USER in the final stage');
    assert.match(users.at(-1)!, /^10001(:10001)?$/);
    const pod = YAML.parseAllDocuments(fs.readFileSync(path.join(ROOT, 'deploy/base/workers.yaml'), 'utf8'))[0]!.toJS() as { spec: { template: { spec: { securityContext: { runAsUser: number } } } } };
    assert.equal(pod.spec.template.spec.securityContext.runAsUser, 10001, 'the pods run as the image user');
    const lastUser = final.findLastIndex((i) => i.op === 'USER');
    assert.equal(final.slice(lastUser).some((i) => i.op === 'RUN'), false, 'nothing runs as root after USER');
    const entry = final.find((i) => i.op === 'ENTRYPOINT');
    assert.deepEqual(JSON.parse(entry?.args ?? 'null'), ['node', 'bin/onelora.js']);
    assert.ok(fs.existsSync(path.join(ROOT, 'bin/onelora.js')));
    assert.match(final.filter((i) => i.op === 'ENV').map((i) => i.args).join(' '), /ONELORA_BACKEND=tensorflow-gpu/);
  });

  void it('copies only files that exist and that .dockerignore lets through', () => {
    const ignored = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const must of ['.git', 'node_modules', '**/job-token.env']) assert.ok(ignored.includes(must), `.dockerignore lists ${must}`);
    for (const i of ins.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
      const srcs = i.args.split(/\s+/).slice(0, -1);
      for (const s of srcs) {
        assert.ok(fs.existsSync(path.join(ROOT, s)), `line ${i.line}: COPY ${s} exists`);
        assert.equal(ignored.includes(s), false, `line ${i.line}: ${s} is not in .dockerignore`);
      }
    }
    // What the CLI loads at run time is in the image.
    const copied = ins.filter((x) => x.op === 'COPY').flatMap((x) => x.args.split(/\s+/));
    for (const dir of ['bin', 'src', 'presets', 'proto']) assert.ok(copied.includes(dir), `COPY ${dir}`);
    // …and every top-level directory the CLI's modules import from, followed from bin/onelora.js.
    const seen = new Set<string>();
    const todo = [path.join(ROOT, 'bin/onelora.js'), path.join(ROOT, 'src/cli/main.ts')];
    while (todo.length) {
      const file = todo.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const m of fs.readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = path.resolve(path.dirname(file), m[1]!).replace(/\.js$/, '.ts');
        if (fs.existsSync(target)) todo.push(target);
      }
    }
    const dirs = new Set([...seen].map((f) => path.relative(ROOT, f).split(path.sep)[0]!));
    assert.ok(dirs.has('worker') && dirs.has('coordinator'), `the walk reaches the runtime: ${[...dirs].join(', ')}`);
    for (const dir of dirs) assert.ok(copied.includes(dir), `the CLI imports from ${dir}/: COPY ${dir}`);
  });
});
