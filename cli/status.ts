/**
 * `ferry status`: what the agent is doing, from its local socket (the `status` op), as aligned
 * lines or as JSON. Given a gateway (`--gateway URL`, or a config file that is a gateway's), it
 * hands over to cli/status-gateway.ts. Loaded only when the command runs.
 */
import { readFileSync } from 'node:fs';
import { localRequest } from '../agent/local-request.js';
import type { AgentStatus } from '../agent/status.js';
import { ErrorCode, FerryError, isFerryError } from '../protocol/errors.js';
import { formatAgentStatus } from './status-format.js';
import { agentSocketPath } from './agent-socket.js';
import { flags } from './args.js';

/** Exit code when no agent answers on the socket, as `systemctl status` says "not running". */
export const exitNotRunning = 3;

export async function runStatus(args: string[]): Promise<number> {
  if (await isGatewayStatus(args)) return (await import('./status-gateway.js')).runGatewayStatus(args);
  const f = flags(args, { config: { type: 'string' }, socket: { type: 'string' }, json: { type: 'boolean' }, 'timeout-ms': { type: 'string' } });
  const timeoutMs = f['timeout-ms'] === undefined ? 5000 : Number(f['timeout-ms']);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new FerryError(ErrorCode.CONFIG_INVALID, `--timeout-ms: expected a positive whole number of ms, got '${f['timeout-ms']}'`);
  if (f.socket === undefined && f.config === undefined) throw new FerryError(ErrorCode.CONFIG_INVALID, 'give --config AGENT_CONFIG or --socket PATH (or --gateway URL for a gateway)');
  const socketPath = await agentSocketPath(f);
  let status: AgentStatus;
  try {
    const res = await localRequest(socketPath, { op: 'status' }, timeoutMs);
    if (!res.ok) throw new FerryError(res.code as ErrorCode, res.message);
    status = res.status as AgentStatus;
  } catch (err) {
    if (!isFerryError(err, ErrorCode.AGENT_UNREACHABLE)) throw err;
    process.stderr.write(`ferry: ${notRunning(socketPath, err)} [${err.code}]\n`);
    return exitNotRunning;
  }
  process.stdout.write(f.json ? `${JSON.stringify(status, null, 2)}\n` : formatAgentStatus(status));
  return 0;
}

/** Why nobody answered, in words: no socket file, a file nobody listens on, or no permission. */
function notRunning(socketPath: string, err: FerryError): string {
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return `agent not running: no socket at ${socketPath}`;
  if (code === 'ECONNREFUSED') return `agent not running: nothing listens on ${socketPath} (left by an agent that stopped)`;
  if (code === 'EACCES') return `cannot use ${socketPath}: permission denied (run as the agent's user, or a member of its socketGroup)`;
  return err.message;
}

/** `--gateway`, or a config file with a gateway's keys (`routes` or `listen`, and no `gateway`). */
async function isGatewayStatus(args: string[]): Promise<boolean> {
  if (args.some((a) => a === '--gateway' || a.startsWith('--gateway='))) return true;
  const i = args.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (i < 0) return false;
  const path = args[i]!.startsWith('--config=') ? args[i]!.slice('--config='.length) : args[i + 1];
  if (path === undefined) return false;
  let doc: unknown;
  try {
    // Loaded only here: `--socket` needs no YAML parser.
    doc = (await import('yaml')).parse(readFileSync(path, 'utf8'));
  } catch {
    return false; // unreadable or not YAML: the agent path says what is wrong with it
  }
  if (typeof doc !== 'object' || doc === null) return false;
  return ('routes' in doc || 'listen' in doc) && !('gateway' in doc);
}
