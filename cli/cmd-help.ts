/** `ferry help [COMMAND]`: the command list, or one command's options. */
import type { Command } from './command.js';
import { commands } from './commands.js';
import { usage } from './usage.js';

export const command: Command = {
  help: `usage: ferry help [COMMAND]

Without COMMAND, lists the commands; with one, prints its options (as ferry COMMAND --help does).
`,
  async run(args) {
    const [name, ...extra] = args;
    if (name === undefined) {
      process.stdout.write(usage());
      return 0;
    }
    const entry = commands[name];
    if (!entry || extra.length > 0) {
      process.stderr.write(`ferry help: ${entry ? 'give one command' : `unknown command '${name}'`}\n\n${usage()}`);
      return 2;
    }
    process.stdout.write((await entry.load()).command.help);
    return 0;
  },
};
