/**
 * The subcommands: one line each, its summary and the module that runs it. A module is imported
 * only when its command runs (or its help is asked for), so `ferry send` loads the local socket
 * client and not the agent, the gateway, the store or the config schemas.
 */
import type { CommandEntry } from './command.js';

export const commands: Record<string, CommandEntry> = {
  gateway: { summary: 'run the gateway: accept agents, dispatch packets to handlers by target; manage its agents', load: () => import('./cmd-gateway.js') },
  agent: { summary: 'run the agent: read sensors, store packets on flash, forward them to the gateway', load: () => import('./cmd-agent.js') },
  sim: { summary: 'simulate a microcontroller on a pseudo-terminal, writing sensor readings', load: () => import('./cmd-sim.js') },
  send: { summary: 'hand one packet to the running agent; prints its seq once stored (--wait: once the gateway acked it)', load: () => import('./cmd-send.js') },
  listen: { summary: 'take downlink messages for a target from the running agent; prints each as a JSON line and acks it', load: () => import('./cmd-listen.js') },
  status: { summary: 'show what a running agent (or gateway) is doing: link, backlog, store, sources, rates', load: () => import('./cmd-status.js') },
  demo: { summary: 'run gateway, simulator and agent together; kill and restart them; check every packet arrived once', load: () => import('./cmd-demo.js') },
  version: { summary: 'print the version (also ferry --version, -V)', load: () => import('./cmd-version.js') },
  help: { summary: 'print this list, or a command\'s options (ferry help COMMAND)', load: () => import('./cmd-help.js') },
};
