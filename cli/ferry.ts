#!/usr/bin/env node
/** The `ferry` command: one binary, a subcommand per role, each loaded only when it runs (cli/commands.ts). */
import { ErrorCode, isFerryError } from '../protocol/errors.js';
import { commands } from './commands.js';
import { usage } from './usage.js';

const aliases: Record<string, string> = { '--help': 'help', '-h': 'help', '--version': 'version', '-V': 'version' };

async function main(argv: string[]): Promise<number> {
  const [given, ...rest] = argv;
  if (given === undefined) {
    process.stdout.write(usage());
    return 2;
  }
  const name = aliases[given] ?? given;
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`ferry: unknown command '${given}'\n\n${usage()}`);
    return 2;
  }
  const { command } = await entry.load();
  if (name !== 'help' && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(command.help);
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err: unknown) => {
    if (isFerryError(err) || (err as { code?: unknown })?.code) {
      process.stderr.write(`ferry: ${(err as Error).message}${isFerryError(err) ? ` [${err.code}]` : ''}\n`);
    } else {
      process.stderr.write(`ferry: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    // A command run without what it needs is a usage error (2), like an unknown command.
    process.exit(isFerryError(err, ErrorCode.CONFIG_MISSING) ? 2 : 1);
  },
);
