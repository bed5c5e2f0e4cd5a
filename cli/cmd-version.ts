/** `ferry version` (also `ferry --version`, `-V`). */
import type { Command } from './command.js';
import { ferryVersion } from './version.js';

export const command: Command = {
  help: `usage: ferry version   (or ferry --version, ferry -V)

Prints "ferry X.Y.Z", the version of the installed package.
`,
  async run() {
    process.stdout.write(`ferry ${ferryVersion()}\n`);
    return 0;
  },
};
