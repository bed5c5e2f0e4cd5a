/**
 * `ferry send`: one packet to the running agent. Started once per event on a small device, so it
 * loads only the local socket client and the packet checks (the agent's config only for --config).
 */
import { localRequest } from '../agent/local-request.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { checkTarget } from '../protocol/packet.js';
import { agentSocketPath } from './agent-socket.js';
import { flags } from './args.js';
import type { Command } from './command.js';

export const command: Command = {
  help: `usage: ferry send --target TARGET --data JSON (--socket PATH | --config AGENT_CONFIG)

  --target TARGET   the packet's target ID (UTF-8, at most 255 bytes), e.g. telemetry/temp
  --data JSON       the packet's data: any JSON value, e.g. '{"t":21.5}' or '"text"'
  --socket PATH     the agent's local socket
  --config FILE     the agent's configuration: its socket (or DATADIR/agent.sock) is used

Exits 0 and prints the seq once the agent stored the packet durably; non-zero with a message otherwise.
`,
  async run(args) {
    const f = flags(args, { target: { type: 'string' }, data: { type: 'string' }, socket: { type: 'string' }, config: { type: 'string' } });
    if (f.target === undefined) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, '--target is required');
    if (f.data === undefined) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, '--data is required');
    let data: unknown;
    try {
      data = JSON.parse(f.data);
    } catch (err) {
      throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `--data is not valid JSON: ${(err as Error).message}`);
    }
    checkTarget(f.target);
    const socketPath = await agentSocketPath(f);
    const res = await localRequest(socketPath, { op: 'send', target: f.target, data: data as never });
    if (!res.ok) throw new FerryError(res.code as ErrorCode, res.message);
    process.stdout.write(`${res.seq}\n`);
    return 0;
  },
};
