// `onelora deploy render`: a kustomize overlay for any run config (docs/deploy.md). Inside the
// onelora checkout the overlay references deploy/base by a relative path (the committed
// deploy/overlays/* do); anywhere else it gets its own copy in OUT/base, so it keeps working
// when moved, committed to another repository or applied from another machine.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../config/index.js';
import { UserError } from '../errors.js';
import { checkOptions, type CheckedOptions, type RenderOptions } from './options.js';
import { TOKEN_FILE, overlayFiles, type OverlayFile } from './overlay.js';

export interface RenderPlan {
  readonly checked: CheckedOptions;
  readonly outDir: string;
  /** The `resources:` entry of kustomization.yaml. */
  readonly baseRef: string;
  /** Base files copied into OUT/base (empty when the base is referenced). */
  readonly copiedBase: readonly string[];
  readonly files: readonly OverlayFile[];
}

function baseDir(): string {
  return path.join(repoRoot(), 'deploy', 'base');
}

function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function chooseBase(outDir: string, explicit: string | undefined): { baseRef: string; copy: boolean } {
  if (explicit !== undefined) return { baseRef: explicit, copy: false };
  if (isInside(repoRoot(), outDir)) return { baseRef: path.relative(outDir, baseDir()).split(path.sep).join('/'), copy: false };
  return { baseRef: 'base', copy: true };
}

/** Checks everything and decides every byte, writing nothing. */
export function planRender(opts: RenderOptions): RenderPlan {
  const checked = checkOptions(opts);
  const outDir = path.resolve(opts.out);
  if (fs.existsSync(outDir) && !fs.statSync(outDir).isDirectory()) throw new UserError(`--out ${opts.out}: exists and is not a directory`);
  const { baseRef, copy } = chooseBase(outDir, opts.base);
  const copiedBase = copy ? fs.readdirSync(baseDir()).filter((f) => fs.statSync(path.join(baseDir(), f)).isFile()).sort() : [];
  const files: OverlayFile[] = [...overlayFiles(checked, baseRef, opts.generateToken === true)];
  for (const f of copiedBase) files.push({ path: `base/${f}`, content: fs.readFileSync(path.join(baseDir(), f), 'utf8') });
  if (opts.generateToken === true) {
    const tokenPath = path.join(outDir, TOKEN_FILE);
    // An existing token is kept: the pods of a running job must keep agreeing on it.
    if (!fs.existsSync(tokenPath)) files.push({ path: TOKEN_FILE, content: `token=${randomBytes(32).toString('hex')}\n`, mode: 0o600 });
    files.push({ path: '.gitignore', content: `${TOKEN_FILE}\n` });
  }
  return { checked, outDir, baseRef, copiedBase, files };
}

function writeRender(plan: RenderPlan): void {
  for (const f of plan.files) {
    const target = path.join(plan.outDir, ...f.path.split('/'));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, f.content, f.mode !== undefined ? { mode: f.mode } : {});
  }
}

/** What a render wrote (or, with dryRun, would write), for stdout. */
function describeRender(plan: RenderPlan, dryRun: boolean, outArg: string): string {
  const c = plan.checked;
  const lines = [
    `${dryRun ? 'would write' : 'wrote'} a kustomize overlay in ${outArg}: run '${c.name}', ${c.workers} workers × ${c.gpusPerWorker} GPU, ` +
      `batch.global ${c.cfg.batch.global} = ${c.workers} × micro ${c.cfg.batch.micro} × accumulation ${c.accumulation}`,
    `base: ${plan.copiedBase.length > 0 ? `a copy of deploy/base in ${outArg}/base` : plan.baseRef}`,
  ];
  if (dryRun) {
    for (const f of plan.files) {
      if (f.path === TOKEN_FILE) lines.push(`--- ${f.path} (a new random token, mode 600)`);
      else if (f.path.startsWith('base/')) lines.push(`--- ${f.path} (copy of deploy/${f.path})`);
      else lines.push(`--- ${f.path}`, f.content.trimEnd());
    }
  } else {
    for (const f of plan.files) lines.push(`  ${f.path}`);
    lines.push(`apply it with: kubectl apply -k ${outArg}`);
  }
  return lines.join('\n') + '\n';
}

/** Plans, then writes unless dryRun; returns the text for stdout. */
export function renderOverlay(opts: RenderOptions & { readonly dryRun?: boolean }): string {
  const plan = planRender(opts);
  if (opts.dryRun !== true) writeRender(plan);
  return describeRender(plan, opts.dryRun === true, opts.out);
}
