// docs/cli.md is generated from the commander definitions themselves, so the reference cannot drift
// from the code (`npm run docs:cli` rewrites it; test/cli-docs.test.ts checks it is current).
import type { Command } from 'commander';

function walk(cmd: Command, prefix: string[], out: string[]): void {
  const name = [...prefix, cmd.name()];
  out.push(`## ${name.join(' ')}`, '', '```text', cmd.helpInformation({ error: false }).trimEnd(), '```', '');
  for (const sub of cmd.commands) walk(sub, name, out);
}

export function cliReference(program: Command): string {
  const out = ['# CLI reference', '', 'Generated from the command definitions by `npm run docs:cli`; do not edit by hand.', ''];
  // Fixed width, so the text does not depend on the terminal that generated it.
  program.configureOutput({ getOutHelpWidth: () => 100, getErrHelpWidth: () => 100 });
  const apply = (c: Command) => {
    c.configureOutput({ getOutHelpWidth: () => 100, getErrHelpWidth: () => 100 });
    c.commands.forEach(apply);
  };
  apply(program);
  walk(program, [], out);
  return out.join('\n');
}
