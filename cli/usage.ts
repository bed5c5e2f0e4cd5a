import { commands } from './commands.js';

/** The list `ferry`, `ferry help` and an unknown command print. */
export const usage = (): string => `ferry: store-and-forward messaging for small Linux devices

usage: ferry <command> [options]   (ferry help <command>, or ferry <command> --help, for its options)

commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(9)}${c.summary}`).join('\n')}
`;
