/**
 * `ferry send`: one packet to the running agent. Started once per event on a small device, so it
 * loads only the local socket client and the packet checks (the agent's config only for --config).
 */
import { localLineBytesMax, localSession } from '../agent/local-request.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { checkTarget } from '../protocol/packet.js';
import { agentSocketPath } from './agent-socket.js';
import { flags } from './args.js';
import type { Command } from './command.js';
import { readSendData } from './send-data.js';

const waitTimeoutMsDefault = 30_000;
/** the agent's own bound on one wait (agent/ack-waiters.ts waitMsMax) */
const waitTimeoutMsMax = 3_600_000;
/** beyond the wait itself, how long the agent may take to answer */
const answerMs = 10_000;

export const command: Command = {
  help: `usage: ferry send --target TARGET --data JSON|-|@FILE (--socket PATH | --config AGENT_CONFIG)
                  [--wait [--wait-timeout-ms MS]]

  --target TARGET      the packet's target ID (UTF-8, at most 255 bytes), e.g. telemetry/temp
  --data JSON          the packet's data: any JSON value, e.g. '{"t":21.5}' or '"text"';
                       - reads the JSON from stdin, @FILE from FILE (at most 256 KiB either way)
  --socket PATH        the agent's local socket
  --config FILE        the agent's configuration: its socket (or DATADIR/agent.sock) is used
  --wait               also wait for the gateway's verdict: prints "acked seq N" once it acked the
                       packet; prints "refused seq N CODE: reason" and exits 3 if it refused it
  --wait-timeout-ms MS how long --wait waits (default ${waitTimeoutMsDefault}, at most ${waitTimeoutMsMax}); then exits 1 with
                       SEND_WAIT_TIMEOUT: the packet stays queued and is sent when it can be

Exits 0 and prints the seq once the agent stored the packet durably; non-zero with a message otherwise.
`,
  async run(args) {
    const f = flags(args, {
      target: { type: 'string' }, data: { type: 'string' }, socket: { type: 'string' }, config: { type: 'string' },
      wait: { type: 'boolean' }, 'wait-timeout-ms': { type: 'string' },
    });
    if (f.target === undefined) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, '--target is required');
    if (f.data === undefined) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, '--data is required');
    const waitMs = waitTimeout(f['wait-timeout-ms']);
    checkTarget(f.target);
    const data = await readSendData(f.data, process.stdin, localLineBytesMax);
    const s = localSession(await agentSocketPath(f));
    try {
      const res = await s.request({ op: 'send', target: f.target, data: data as never });
      if (!res.ok) throw new FerryError(res.code as ErrorCode, res.message);
      if (!f.wait) {
        process.stdout.write(`${res.seq}\n`);
        return 0;
      }
      const seq = res.seq!;
      const v = await s.request({ op: 'waitAcked', seq, timeoutMs: waitMs }, waitMs + answerMs);
      if (!v.ok) throw new FerryError(v.code as ErrorCode, v.code === ErrorCode.SEND_WAIT_TIMEOUT ? v.message : `seq ${seq} is stored; ${v.message}`);
      if (v.acked) {
        process.stdout.write(`acked seq ${seq}\n`);
        return 0;
      }
      process.stdout.write(`refused seq ${seq} ${v.refusal?.code}: ${v.refusal?.message}\n`);
      return 3;
    } finally {
      s.close();
    }
  },
};

function waitTimeout(v: string | undefined): number {
  if (v === undefined) return waitTimeoutMsDefault;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > waitTimeoutMsMax) throw new FerryError(ErrorCode.CONFIG_INVALID, `--wait-timeout-ms: expected an integer from 1 to ${waitTimeoutMsMax}, got '${v}'`);
  return n;
}
