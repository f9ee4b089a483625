// Small file systems made by a test itself (we run as root, so chmod stops nothing: a read-only
// or a full file system is the real fault): a tmpfs of a given size, remounted read-only or larger.
import { execFileSync } from 'node:child_process';
import { tmpDir } from '../helpers.js';

const mounted: string[] = [];

/** A fresh tmpfs of `size` (as mount's size=, e.g. 56k); null where mount is not permitted. */
export function mountTmpfs(size: string, options = ''): string | null {
  const at = tmpDir('tmpfs');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${options ? `,${options}` : ''}`, 'tmpfs', at], { stdio: 'pipe' });
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
