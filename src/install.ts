// Where onelora's own files are (package.json, proto/, presets/, the entry point): the repository
// when it runs from source through tsx, or the directory of the self-contained bundle
// (scripts/bundle.ts), whose banner sets globalThis.ONELORA_BUNDLE_DIR before any module runs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bundleDir = (globalThis as { ONELORA_BUNDLE_DIR?: string }).ONELORA_BUNDLE_DIR;

/** A path inside the install: the repository root, or the bundle's directory. */
export function installPath(...parts: string[]): string {
  return path.join(bundleDir ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), ...parts);
}

/** The script that runs the onelora CLI again (launch's workers): bin/onelora.js, or the bundle itself. */
export function selfScript(): string {
  return bundleDir ? path.join(bundleDir, 'onelora.mjs') : installPath('bin', 'onelora.js');
}

/** The heartbeat thread's entry: worker/heartbeat-thread.mjs (tsx), or the bundle's own copy. */
export function heartbeatThreadEntry(): URL {
  return new URL(`file://${bundleDir ? path.join(bundleDir, 'heartbeat-thread.mjs') : installPath('worker', 'heartbeat-thread.mjs')}`);
}
