// Entry of the worker's heartbeat thread (worker/heartbeat.ts): module loaders are per thread, so
// this one registers tsx for itself, as bin/onelora.js does for the main thread, then loads the
// TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./heartbeat.ts');
