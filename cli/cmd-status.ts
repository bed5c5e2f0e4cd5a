/** `ferry status`: what a running agent (or gateway) is doing. Asking a socket needs none of the agent's own code. */
import type { Command } from './command.js';

export const command: Command = {
  help: `usage: ferry status (--config AGENT_CONFIG | --socket PATH) [--json] [--timeout-ms MS]
       ferry status (--gateway URL | --config GATEWAY_CONFIG) [--token-file FILE] [--json]

  --config FILE     an agent's configuration: its local socket is asked; a gateway's
                    configuration (it has routes or listen): its admin endpoint is asked
  --socket PATH     the agent's local socket
  --gateway URL     the gateway's admin endpoint (listen.admin), e.g. http://127.0.0.1:7990
  --token-file FILE the gateway's admin token (admin.tokenFile; read from a gateway's --config)
  --json            the same data as JSON, for scripts
  --timeout-ms MS   how long to wait for the agent's answer (default 5000)

For an agent: link state and transport, RTT, backlog (packets, bytes, oldest age), in flight,
retrying, dead letters, store use against capacity, drops by reason, sources and their state,
downlink, and the rate over the last minute (docs/operations.md). Exits 0; 3 when no agent
answers on the socket (not running) with a message naming the socket.
`,
  run: async (args) => (await import('./status.js')).runStatus(args),
};
