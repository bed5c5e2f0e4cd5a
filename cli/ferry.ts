#!/usr/bin/env node
/** The `ferry` command: one binary, a subcommand per role. */
import { isFerryError } from '../protocol/errors.js';
import { commands } from './commands.js';

const usage = `ferry: store-and-forward messaging for small Linux devices

usage: ferry <command> [options]   (ferry <command> --help for its options)

commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(9)}${c.summary}`).join('\n')}
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`ferry: unknown command '${name}'\n\n${usage}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
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
    process.exit(1);
  },
);
