/** `ferry sim`: a simulated microcontroller on a pseudo-terminal. */
import { runSim, simConfigSchema } from '../firmware-sim/index.js';
import { flags, num } from './args.js';
import type { Command } from './command.js';
import { loadConfig } from './load-config.js';
import { untilSignal } from './until-signal.js';

export const command: Command = {
  help: `usage: ferry sim [--config FILE] [--link PATH] [--rate HZ] [--duration-ms MS]

  --config FILE      simulator configuration (YAML; see docs/config.md); all keys have defaults
  --link PATH        overrides link: the device path the agent opens (default /tmp/ferry-sim/ttyFERRY0)
  --rate HZ          overrides rateHz: readings per second (default 10)
  --duration-ms MS   overrides durationMs: stop after this long

Prints "ferry sim device PATH" once readings flow (as text lines like "t=21.53"). Needs socat.
Obeys commands written to the device (interval=MS, rate=HZ, threshold=VALUE|off) and answers
each with a line "ok ..." or "err ..." (docs/config.md).
`,
  async run(args) {
    const f = flags(args, { config: { type: 'string' }, link: { type: 'string' }, rate: { type: 'string' }, 'duration-ms': { type: 'string' } });
    const config = loadConfig(f.config, simConfigSchema, [
      { path: ['link'], value: f.link }, { path: ['rateHz'], value: num(f.rate, '--rate') },
      { path: ['durationMs'], value: num(f['duration-ms'], '--duration-ms') },
    ]);
    const s = await runSim(config, { log: (line) => process.stderr.write(`${line}\n`) });
    process.stdout.write(`ferry sim device ${s.devicePath}\n`);
    const bySignal = untilSignal(() => s.stop());
    await Promise.race([bySignal, s.closed]);
    await s.stop();
    return 0;
  },
};
