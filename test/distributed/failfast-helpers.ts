// What the fail-fast tests share: the tiny run, `onelora` run as a child process to its exit, and
// small file systems made by the test itself (we run as root, so chmod stops nothing: a read-only
// or a full file system is the real fault): a tmpfs of a given size, remounted read-only or larger.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { toYaml, type RunConfig } from '../../src/config/index.js';
import { tmpDir } from '../helpers.js';
import { tinyConfig } from '../train/helpers.js';

const BIN = new URL('../../bin/onelora.js', import.meta.url).pathname;

/** The tiny LLaMA run of DIR (test/train/helpers.ts) at global batch 8 = 2 workers × micro 2 × 2. */
export const smallRun = (dir: string, sets: string[] = []): RunConfig => tinyConfig(dir, { batch: { global: 8, micro: 2 } }, ['distributed.allreduce_timeout_s=20', ...sets]);

export function configFile(c: RunConfig): string {
  const file = path.join(tmpDir('cfg'), 'run.yaml');
  fs.writeFileSync(file, toYaml(c));
  return file;
}

/** Runs `onelora ARGS` to its end; the exit code and stderr. */
export function onelora(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ONELORA_LOG: 'warn', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

/** `onelora coordinator ARGS` (logging at info): resolves `listening` once workers can register. */
export function coordinator(args: string[], token: string): { listening: Promise<void>; exited: Promise<number | null>; stderr(): string } {
  const child = spawn(process.execPath, [BIN, 'coordinator', ...args], { env: { ...process.env, ONELORA_LOG: 'info', ONELORA_JOB_TOKEN: token }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const listening = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => ((stderr += d.toString()), /coordinator listening/.test(stderr) && resolve()));
    void exited.then((code) => reject(new Error(`the coordinator exited ${code} before listening: ${stderr}`)));
  });
  return { listening, exited, stderr: () => stderr };
}

const mounted: string[] = [];

/** A fresh tmpfs of `size` (as mount's size=, e.g. 56k); null where mount is not permitted. */
export function mountTmpfs(size: string): string | null {
  const at = tmpDir('tmpfs');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at], { stdio: 'pipe' });
  } catch {
    return null;
  }
  mounted.push(at);
  return at;
}

/** `mount -o remount,OPTIONS` of a tmpfs made by mountTmpfs (ro, rw, size=1m). */
export function remount(at: string, options: string): void {
  execFileSync('mount', ['-o', `remount,${options}`, at], { stdio: 'pipe' });
}

export function unmountAll(): void {
  for (const at of mounted.splice(0)) execFileSync('umount', ['-l', at], { stdio: 'pipe' });
}
