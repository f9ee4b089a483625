import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it, before, after } from 'node:test';
import { throwsUser, tmpDir } from './helpers.js';
import {
  BACKENDS, applyOverrides, configHash, listPresets, loadConfig, loadPreset, parseConfig, toYaml,
  type RunConfig,
} from '../src/config/index.js';
import { deriveAccumulation } from '../src/train/batch.js';

const BASE = `# an example run config (docs/config.md)
model: { preset: llama2-7b }
method: "1lora"
task: causal-lm
data: { train: data/train.arrow, validation: data/validation.arrow }
batch: { global: 128, micro: 4 }
optim: { name: adamw, lr: 3e-4, weight_decay: 0.0, betas: [0.9, 0.999], eps: 1e-8, grad_clip: 1.0 }
schedule: { name: cosine, warmup_steps: 100, epochs: 3 }
eval: { every: 200, max_batches: 50, generate: true }
checkpoint: { every: 50, keep: 3 }
distributed: { workers: 16, min_workers: 16, max_failures: 3, allreduce_timeout_s: 60 }
seed: 0
`;

let dir: string;
before(() => {
  dir = tmpDir('cfg');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** BASE with one line replaced (matched by its key) or appended. */
function variant(name: string, key: string, line: string | null): string {
  const lines = BASE.split('\n').filter((l) => !l.startsWith(`${key}:`));
  if (line !== null) lines.push(line);
  return write(name, lines.join('\n'));
}

void describe('run config: valid files', () => {
  void it('reads an example config, fills defaults, resolves paths against the YAML directory, freezes', () => {
    const file = write('run.yaml', BASE);
    const cfg = loadConfig(file);
    assert.equal(cfg.model.preset, 'llama2-7b');
    assert.equal(cfg.optim.lr, 3e-4);
    assert.deepEqual(cfg.optim.betas, [0.9, 0.999]);
    assert.equal(cfg.schedule.epochs, 3);
    assert.equal(cfg.data.train, path.join(dir, 'data/train.arrow'));
    assert.equal(cfg.data.max_len, 512);
    assert.equal(cfg.eval.metric, 'loss');
    assert.equal(cfg.distributed.min_workers, 16);
    assert.equal(cfg.augment.image_size, 224);
    assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.optim) && Object.isFrozen(cfg.optim.betas));
    assert.throws(() => {
      (cfg.optim as { lr: number }).lr = 1;
    }, TypeError);
  });

  void it('round-trips through toYaml to an equal config with the same hash', () => {
    const cfg = loadConfig(write('rt.yaml', BASE), ['max_steps=10', 'output=out', 'model.tokenizer=./tok']);
    const text = toYaml(cfg);
    assert.match(text, new RegExp(`config_hash ${configHash(cfg)}`));
    const back = loadConfig(write('rt-out.yaml', text));
    assert.deepEqual(back, cfg);
    assert.equal(configHash(back), configHash(cfg));
  });

  void it('minimal file: only the keys without defaults', () => {
    const cfg = parseConfig(
      { model: { path: 'm' }, method: 'lora:r=1', task: 'classification', data: { train: 't.arrow' }, batch: { global: 10, micro: 10 }, schedule: { total_steps: 5 } },
      { source: 'inline', baseDir: '/base' },
    );
    assert.equal(cfg.model.path, '/base/m');
    assert.equal(cfg.eval.metric, 'accuracy');
    assert.equal(cfg.distributed.workers, 1);
    assert.equal(cfg.schedule.name, 'cosine');
  });

  void it('--set values parse as YAML scalars and flow collections; paths resolve against the working directory', () => {
    const cfg = loadConfig(write('set.yaml', BASE), [
      'optim.lr=1e-4', 'optim.betas=[0.9, 0.99]', 'eval.generate=false', 'method=1lora+norms', 'schedule.total_steps=1000',
      'data.train=rel/train.arrow', 'model.path=/models/llama', 'backend=wasm',
    ]);
    assert.equal(cfg.optim.lr, 1e-4);
    assert.deepEqual(cfg.optim.betas, [0.9, 0.99]);
    assert.equal(cfg.eval.generate, false);
    assert.equal(cfg.method, '1lora+norms');
    // Setting one of two alternatives replaces the other.
    assert.equal(cfg.schedule.total_steps, 1000);
    assert.equal(cfg.schedule.epochs, undefined);
    assert.equal(cfg.model.path, '/models/llama');
    assert.equal(cfg.model.preset, undefined);
    assert.equal(cfg.data.train, path.resolve('rel/train.arrow'));
    assert.equal(cfg.backend, 'wasm');
  });

  void it('--set on a text key takes the value verbatim (regexes, SPECs), unless quoted', () => {
    const raw = applyOverrides({}, ['targets=[a-z]+_proj', 'method=lora:r=1,alpha=2+norms', 'description=a: b', "model.preset='7'", 'model={path: m}']);
    assert.deepEqual(raw, { targets: '[a-z]+_proj', method: 'lora:r=1,alpha=2+norms', description: 'a: b', model: { path: path.resolve('m') } });
  });

  void it('applyOverrides leaves its input untouched and creates missing sections', () => {
    const raw = { optim: { lr: 1 } };
    const out = applyOverrides(raw, ['distributed.workers=4', 'optim.lr=2']);
    assert.deepEqual(raw, { optim: { lr: 1 } });
    assert.deepEqual(out, { optim: { lr: 2 }, distributed: { workers: 4 } });
  });

  void it('the config backends are the backend module\'s choices', async () => {
    const { BACKEND_CHOICES } = await import('../src/backend/select.js');
    assert.deepEqual([...BACKENDS], [...BACKEND_CHOICES]);
  });
});

void describe('run config: errors name the source and the key', () => {
  void it('unknown key at the top level', () => {
    throwsUser(() => loadConfig(variant('top.yaml', 'learning_rate', 'learning_rate: 3')), 'top.yaml', "unknown key 'learning_rate'", 'known:', 'optim');
  });

  void it('unknown key at a nested level lists the keys of that level', () => {
    const f = variant('nested.yaml', 'optim', 'optim: { learning_rate: 3e-4 }');
    throwsUser(() => loadConfig(f), 'nested.yaml', "unknown key 'optim.learning_rate'", 'known: name, lr, weight_decay');
  });

  void it('wrong type', () => {
    throwsUser(() => loadConfig(variant('type.yaml', 'optim', 'optim: { lr: fast }')), 'type.yaml: optim.lr: expected number, got string "fast"');
    throwsUser(() => loadConfig(variant('int.yaml', 'seed', 'seed: 1.5')), 'int.yaml: seed: expected integer');
    throwsUser(() => loadConfig(variant('neg.yaml', 'batch', 'batch: { global: 128, micro: -4 }')), 'batch.micro', '> 0');
  });

  void it('bad enum', () => {
    throwsUser(() => loadConfig(variant('enum.yaml', 'task', 'task: regression')), 'enum.yaml: task: expected one of causal-lm | classification | diffusion | depth, got string "regression"');
  });

  void it('both epochs and total_steps, and neither', () => {
    throwsUser(() => loadConfig(variant('both.yaml', 'schedule', 'schedule: { epochs: 3, total_steps: 10 }')), 'both.yaml: schedule:', 'exactly one of epochs or total_steps', 'both');
    throwsUser(() => loadConfig(variant('neither.yaml', 'schedule', 'schedule: { name: linear }')), 'schedule:', 'neither');
  });

  void it('a missing required key', () => {
    throwsUser(() => loadConfig(variant('missing.yaml', 'method', null)), 'missing.yaml: method: missing (expected string)');
  });

  void it('model needs exactly one of preset or path', () => {
    throwsUser(() => loadConfig(variant('model.yaml', 'model', 'model: { preset: a, path: b }')), 'model.yaml: model:', 'exactly one of preset or path');
  });

  void it('cross-key checks name the key', () => {
    throwsUser(() => loadConfig(write('minw.yaml', BASE), ['distributed.min_workers=32']), 'distributed.min_workers', '≤ distributed.workers');
  });

  void it('--set on an unknown key names it and lists the keys at that level', () => {
    throwsUser(() => loadConfig(write('s1.yaml', BASE), ['optim.learning_rate=1']), "--set optim.learning_rate=1: unknown key 'optim.learning_rate'", 'known in optim: name, lr');
    throwsUser(() => loadConfig(write('s2.yaml', BASE), ['nope=1']), "unknown key 'nope'", 'known: description, model');
    throwsUser(() => loadConfig(write('s3.yaml', BASE), ['optim.lr.x=1']), "'optim.lr' is a number, not a section");
    throwsUser(() => loadConfig(write('s4.yaml', BASE), ['optim.lr']), '--set optim.lr: expected key=value');
  });

  void it('--set with a bad value names the flag, not the file', () => {
    throwsUser(() => loadConfig(write('s5.yaml', BASE), ['optim.lr=fast']), '--set optim.lr=fast: optim.lr: expected number, got string "fast"');
    throwsUser(() => loadConfig(write('s6.yaml', BASE), ['task=nope']), '--set task=nope: task: expected one of');
    throwsUser(() => loadConfig(write('s7.yaml', BASE), ['optim.betas=[0.9']), '--set optim.betas=[0.9', 'not a YAML');
  });

  void it('YAML syntax errors, duplicate YAML keys, missing files and non-mapping documents', () => {
    throwsUser(() => loadConfig(write('syntax.yaml', 'model: { preset: [\n')), 'syntax.yaml: not valid YAML');
    throwsUser(() => loadConfig(write('dupkey.yaml', BASE + 'seed: 1\n')), 'dupkey.yaml: not valid YAML');
    throwsUser(() => loadConfig(path.join(dir, 'absent.yaml')), 'absent.yaml', 'ENOENT');
    throwsUser(() => loadConfig(write('list.yaml', '- 1\n')), 'list.yaml', 'mapping');
  });

  void it('an unknown preset lists the available ones', () => {
    const names = listPresets();
    throwsUser(() => loadPreset('no-such-preset'), 'no-such-preset', 'available:', ...names.slice(0, 3));
    for (const name of names) assert.equal(typeof loadPreset(name).method, 'string', `preset ${name}`);
  });
});

void describe('run config: hash and accumulation', () => {
  const base = (): RunConfig => loadConfig(write('h.yaml', BASE));
  const hashWith = (...sets: string[]) => configHash(loadConfig(write('h.yaml', BASE), sets));

  void it('is unchanged by max_steps, output, backend and the number of workers', () => {
    const h = configHash(base());
    assert.match(h, /^[0-9a-f]{64}$/);
    assert.equal(hashWith('max_steps=7'), h);
    assert.equal(hashWith('output=/tmp/x'), h);
    assert.equal(hashWith('backend=cpu'), h);
    assert.equal(hashWith('distributed.workers=32', 'distributed.min_workers=8', 'distributed.max_failures=9'), h);
    assert.equal(hashWith('description=hello'), h);
    // Writing a default out explicitly is the same config.
    assert.equal(hashWith('data.max_len=512'), h);
  });

  void it('changes with lr, seed and method', () => {
    const h = configHash(base());
    assert.notEqual(hashWith('optim.lr=1e-4'), h);
    assert.notEqual(hashWith('seed=1'), h);
    assert.notEqual(hashWith('method=lora:r=1'), h);
  });

  void it('accumulation = global / (workers × micro)', () => {
    const at = (global: number, micro: number) => parseConfig(
      { model: { preset: 'x' }, method: '1lora', task: 'causal-lm', data: { train: 't' }, batch: { global, micro }, schedule: { epochs: 1 } },
      { source: 'inline', baseDir: dir },
    );
    assert.equal(deriveAccumulation(at(128, 4), 16), 2);
    assert.equal(deriveAccumulation(at(128, 2), 64), 1);
    assert.equal(deriveAccumulation(at(128, 4)), 32); // workers default to 1
    throwsUser(() => deriveAccumulation(at(128, 4), 3), '128', 'workers 3', 'batch.micro 4');
  });
});

void describe('run config: one path rule (docs/config.md#paths)', () => {
  const ROOT = path.resolve(import.meta.dirname, '..');
  const bin = path.join(ROOT, 'bin', 'onelora.js');

  void it('--preset NAME and --config presets/NAME.yaml resolve every path alike, and the shipped presets find the committed demo files', () => {
    for (const name of listPresets()) {
      const a = loadPreset(name);
      const b = loadConfig(path.join(ROOT, 'presets', `${name}.yaml`));
      assert.deepEqual({ model: a.model, data: a.data }, { model: b.model, data: b.data }, name);
    }
    for (const name of ['demo', 'tiny-vit-demo', 'tiny-dit-demo']) {
      const c = loadPreset(name);
      for (const f of [c.model.path!, c.data.train, c.data.validation!]) assert.ok(fs.existsSync(f), `${name}: ${f}`);
    }
    assert.equal(loadPreset('llama2-7b-metamath').data.train, path.join(ROOT, 'data', 'metamath', 'train.arrow'));
  });

  void it('a preset copied elsewhere resolves against its new directory; a missing file names the path as written and as resolved', async () => {
    const { spawnSync } = await import('node:child_process');
    const home = tmpDir('cfg-copy');
    fs.mkdirSync(path.join(home, 'configs'));
    const copy = path.join(home, 'configs', 'demo.yaml');
    fs.copyFileSync(path.join(ROOT, 'presets', 'demo.yaml'), copy);
    const cfg = loadConfig(copy, [`model.path=${path.join(ROOT, 'models', 'demo-llama')}`]);
    assert.equal(cfg.data.train, path.join(home, 'data', 'demo', 'metamath-llama', 'train.arrow'));
    const r = spawnSync(process.execPath, [bin, 'train', '--config', copy, '--set', `model.path=${path.join(ROOT, 'models', 'demo-llama')}`, '--output', path.join(home, 'run'), '--max-steps', '1'],
      { cwd: home, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.ok(r.stderr.includes(`data.train: ${cfg.data.train} (written '../data/demo/metamath-llama/train.arrow' in ${copy}, relative to its directory ${path.dirname(copy)}) does not exist`), r.stderr);
    const dry = spawnSync(process.execPath, [bin, 'train', '--config', copy, '--set', 'model.path=nowhere', '--output', path.join(home, 'run'), '--dry-run'], { cwd: home, encoding: 'utf8', timeout: 120_000 });
    assert.equal(dry.status, 0, dry.stderr);
    assert.ok(dry.stdout.includes(`model.path: ${path.join(home, 'nowhere')} (from --set model.path=nowhere, relative to the working directory ${home})`), dry.stdout);
    fs.rmSync(home, { recursive: true, force: true });
  });
});
