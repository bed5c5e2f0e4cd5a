/** What a subcommand module (cli/cmd-*.ts) exports; cli/commands.ts names each and loads it when used. */
export interface Command {
  help: string;
  /** Resolves with the exit code once the command is done (servers: once stopped by a signal). */
  run(args: string[]): Promise<number>;
}

export interface CommandEntry {
  summary: string;
  /** The command's module, imported only when this command runs or its help is asked for. */
  load(): Promise<{ command: Command }>;
}
