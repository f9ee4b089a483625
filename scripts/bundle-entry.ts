// The bundle's entry (scripts/bundle.ts): bin/onelora.js without tsx, which the bundle does not need.
import { runCli } from '../src/cli/main.js';

await runCli();
