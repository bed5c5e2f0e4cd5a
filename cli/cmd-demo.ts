/** `ferry demo`: gateway, simulator and agent together, killed and restarted, every packet checked. */
import { flags, num } from './args.js';
import type { Command } from './command.js';
import { runDemo } from './demo.js';

export const command: Command = {
  help: `usage: ferry demo [--duration-s S] [--rate HZ] [--keep DIR]

  --duration-s S   how long readings flow (default 20)
  --rate HZ        simulator readings per second (default 50)
  --keep DIR       work in DIR and keep it afterwards (default: a temporary directory, removed)

Starts a gateway (file handler; authentication on, with the agent registered and given its
token), the simulator and an agent as separate processes, shows live
progress, SIGKILLs and restarts the gateway and then the agent midway, and finally compares what
the agent generated with what the file handler wrote. Exits 0 only if every packet arrived exactly
once and in order. Needs socat (installed by scripts/bootstrap.sh, which npm run demo calls).
`,
  async run(args) {
    const f = flags(args, { 'duration-s': { type: 'string' }, rate: { type: 'string' }, keep: { type: 'string' } });
    return runDemo({ durationS: num(f['duration-s'], '--duration-s') ?? 20, rateHz: num(f.rate, '--rate') ?? 50, ...(f.keep ? { keepDir: f.keep } : {}) });
  },
};
