#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so `npx onelora` works right after `npm ci`
// with no build step.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/cli/main.ts');
await runCli();
