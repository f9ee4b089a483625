// `npm run bundle`: dist/, a self-contained onelora for linux-x64 GPU (or CPU) machines that reach
// no package registry: one ESM bundle of the CLI (esbuild) plus only the files it loads at run
// time — zeromq's addon, dawn.node (webgpu), the tfjs wasm binaries, sharp's libvips, the proto
// file, the presets and the demo model and data they name. `node dist/onelora.mjs …` runs it with
// no node_modules of the repository (docs/deploy.md#bundle). Prints the size; fails above 60 MB.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const ROOT = path.resolve(import.meta.dirname, '..');
const OUT = path.resolve(process.argv[2] ?? path.join(ROOT, 'dist'));
const MAX_BYTES = 60 * 2 ** 20;
const NM = path.join(ROOT, 'node_modules');

// Native or self-locating packages stay outside the bundle: each finds its binary relative to its
// own directory, so a trimmed copy of each (linux-x64 only) goes to dist/node_modules.
const EXTERNAL = ['zeromq', 'webgpu', 'sharp', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];

// Before any module of the bundle runs: the CommonJS globals bundled CJS code expects, and the
// directory install.ts resolves proto/, presets/ and the entry point against.
const BANNER = [
  "import { createRequire as __oneloraRequire } from 'node:module';",
  "import { fileURLToPath as __oneloraPath } from 'node:url';",
  "import { dirname as __oneloraDir } from 'node:path';",
  'const require = __oneloraRequire(import.meta.url);',
  'const __filename = __oneloraPath(import.meta.url);',
  'const __dirname = __oneloraDir(__filename);',
  'globalThis.ONELORA_BUNDLE_DIR ??= __dirname;',
].join('\n');

function copy(from: string, to: string, filter: (rel: string) => boolean = () => true): void {
  const walk = (rel: string): void => {
    const src = path.join(from, rel);
    if (fs.statSync(src).isDirectory()) {
      for (const e of fs.readdirSync(src)) walk(path.join(rel, e));
    } else if (filter(rel)) {
      fs.mkdirSync(path.dirname(path.join(to, rel)), { recursive: true });
      fs.copyFileSync(src, path.join(to, rel));
    }
  };
  walk('');
}

function sizeOf(dir: string): number {
  return fs.readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? sizeOf(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size), 0);
}

fs.rmSync(OUT, { recursive: true, force: true });
fs.mkdirSync(OUT, { recursive: true });

await build({
  entryPoints: { onelora: path.join(ROOT, 'scripts', 'bundle-entry.ts'), 'heartbeat-thread': path.join(ROOT, 'worker', 'heartbeat.ts') },
  outdir: OUT, outExtension: { '.js': '.mjs' }, bundle: true, platform: 'node', format: 'esm', target: 'node20',
  external: EXTERNAL, banner: { js: BANNER }, legalComments: 'none', minifyWhitespace: true, logLevel: 'warning',
});

// tfjs-backend-wasm loads its binaries from __dirname: next to the bundle.
for (const f of fs.readdirSync(path.join(NM, '@tensorflow', 'tfjs-backend-wasm', 'dist')).filter((x) => x.endsWith('.wasm'))) {
  fs.copyFileSync(path.join(NM, '@tensorflow', 'tfjs-backend-wasm', 'dist', f), path.join(OUT, f));
}
const mod = (name: string, filter: (rel: string) => boolean): void => copy(path.join(NM, name), path.join(OUT, 'node_modules', name), filter);
const js = (rel: string): boolean => rel === 'package.json' || (/\.(c|m)?js$/.test(rel) && !rel.includes('ts3.7'));
// zeromq: its JS, the cmake-ts loader it requires, and the Node-API addon for glibc linux-x64.
// Node-API addons load on any Node >= 20; the glibc-127 build is the one whose glibc symbols (<= 2.36, Debian 12) cover the images onelora targets (the others need glibc 2.38).
mod('zeromq', (rel) => (js(rel) && rel.startsWith('lib')) || rel === 'package.json' || rel.startsWith(path.join('build', 'linux', 'x64', 'node', 'glibc-127-Release')));
fs.writeFileSync(path.join(OUT, 'node_modules', 'zeromq', 'build', 'manifest.json'), JSON.stringify(Object.fromEntries(
  Object.entries(JSON.parse(fs.readFileSync(path.join(NM, 'zeromq', 'build', 'manifest.json'), 'utf8')) as Record<string, string>).filter(([, v]) => v === 'linux/x64/node/glibc-127-Release/addon.node'),
)));
mod('cmake-ts', (rel) => rel === 'package.json' || rel === path.join('build', 'loader.js'));
// webgpu: dawn.node for linux-x64 (it needs libvulkan.so.1 and a Vulkan driver on the machine).
mod('webgpu', (rel) => rel === 'package.json' || rel === 'index.js' || rel.startsWith(path.join('dist', 'linux-x64')));
// sharp (image decoding) and its prebuilt libvips for glibc linux-x64.
mod('sharp', (rel) => rel === 'package.json' || rel.startsWith('lib'));
for (const dep of ['@img/colour', 'detect-libc', 'semver', '@img/sharp-linux-x64', '@img/sharp-libvips-linux-x64']) {
  if (fs.existsSync(path.join(NM, dep))) mod(dep, (rel) => !rel.endsWith('.md') && !rel.endsWith('.d.ts') && !rel.startsWith('include'));
}

// Run-time files of the repository: install.ts resolves them against the bundle's directory.
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
fs.writeFileSync(path.join(OUT, 'package.json'), `${JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', private: true }, null, 2)}\n`);
copy(path.join(ROOT, 'proto'), path.join(OUT, 'proto'));
copy(path.join(ROOT, 'presets'), path.join(OUT, 'presets'));
copy(path.join(ROOT, 'models', 'demo-llama'), path.join(OUT, 'models', 'demo-llama'));
copy(path.join(ROOT, 'data', 'demo', 'metamath-llama'), path.join(OUT, 'data', 'demo', 'metamath-llama'));

const bytes = sizeOf(OUT);
console.log(JSON.stringify({ out: OUT, bytes, mb: Math.round((bytes / 2 ** 20) * 10) / 10, bundle_bytes: fs.statSync(path.join(OUT, 'onelora.mjs')).size }));
if (bytes > MAX_BYTES) {
  console.error(`dist is ${bytes} bytes, over the ${MAX_BYTES}-byte budget`);
  process.exitCode = 1;
}
