/** `ferry listen`: a downlink subscriber on the agent's local socket (the work is in listen.ts). */
import type { Command } from './command.js';
import { runListen } from './listen.js';

export const command: Command = {
  help: `usage: ferry listen --target PATTERN (--socket PATH | --config AGENT_CONFIG) [--count N]

  --target PATTERN  the targets to take: exact (cfg/interval), prefix (cfg/*) or MQTT-style
                    (cmd/+/set, cmd/#); the agent routes them here with a downlink route "to: local"
  --socket PATH     the agent's local socket
  --config FILE     the agent's configuration: its socket (or DATADIR/agent.sock) is used
  --count N         exit 0 after N messages were printed and acked (default: run until SIGINT/SIGTERM)

Prints each message as one JSON line {"id","target","data","ts"} (data bytes as {"base64":...})
and acks it once the line is written. When several subscribers match, the oldest subscription
gets the message. Exits non-zero if the agent is not running or goes away. Framing: docs/downlink.md.
`,
  run: runListen,
};
