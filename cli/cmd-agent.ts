/** `ferry agent`: runs the agent, or lists and requeues its dead letters. */
import { agentConfigSchema, type AgentConfig } from '../agent/config.js';
import { runAgent, socketPathOf, storeDir } from '../agent/main.js';
import { SegmentStore } from '../agent/store/segment-store.js';
import type { DeadLetter } from '../agent/store/store.js';
import { localRequest } from '../agent/local-api.js';
import { ErrorCode, FerryError, isFerryError } from '../protocol/errors.js';
import { dataToJson } from '../protocol/packet.js';
import { flags } from './args.js';
import type { Command } from './command.js';
import { loadConfig } from './load-config.js';
import { closeGraceMs } from '../common/shutdown.js';
import { untilSignal } from './until-signal.js';

export const command: Command = {
  help: `usage: ferry agent --config FILE [--gateway URL] [--data-dir DIR] [--profile NAME] [--id ID]
       ferry agent --config FILE --dead-letters | --requeue-dead-letters

  --config FILE     agent configuration (YAML; see docs/config.md)
  --gateway URL     overrides gateway (one URL), e.g. tcp://127.0.0.1:7800, tls://gw.example:7801
                    or https://gw.example:7443 (HTTP long-poll, through HTTPS_PROXY if set)
  --data-dir DIR    overrides dataDir (the store lives here)
  --profile NAME    overrides profile: a hardware profile (${'hw/profiles'}) that sets the store size
                    limit and the in-flight window, e.g. pi-zero-2w, pi-4b
  --id ID           overrides id
  --dead-letters    print the packets the gateway rejected (JSON lines: seq, target, ts, code,
                    message, data) and exit; works whether the agent runs or not
  --requeue-dead-letters
                    put every dead letter back in the queue (new seqs) and exit

Prints "ferry agent metrics on http://HOST:PORT/metrics" when metrics.listen is set, then
"ferry agent running; local socket PATH" once started. Stops on SIGINT/SIGTERM (sends nothing
new, waits at most shutdownTimeoutMs for the gateway's acks; a second signal exits at once) and then
prints "ferry agent stopped; lastSeq N ackedSeq M backlog B".
`,
  async run(args) {
    const f = flags(args, {
      config: { type: 'string' }, gateway: { type: 'string' }, 'data-dir': { type: 'string' },
      profile: { type: 'string' }, id: { type: 'string' }, 'dead-letters': { type: 'boolean' }, 'requeue-dead-letters': { type: 'boolean' },
    });
    const config = loadConfig(f.config, agentConfigSchema, [
      { path: ['gateway'], value: f.gateway }, { path: ['dataDir'], value: f['data-dir'] },
      { path: ['profile'], value: f.profile }, { path: ['id'], value: f.id },
    ], 'agent');
    if (f['dead-letters'] || f['requeue-dead-letters']) return deadLetterCommand(config, f['requeue-dead-letters'] === true);
    const a = await runAgent(config);
    if (a.metricsUrl !== null) process.stdout.write(`ferry agent metrics on ${a.metricsUrl}\n`);
    process.stdout.write(`ferry agent running; local socket ${a.socketPath}\n`);
    return untilSignal(async () => {
      await a.stop();
      const s = a.stats();
      process.stdout.write(`ferry agent stopped; lastSeq ${s.lastSeq} ackedSeq ${s.ackedSeq} backlog ${s.backlog}\n`);
    }, config.shutdownTimeoutMs + closeGraceMs);
  },
};

/** Lists or requeues dead letters: through the running agent's socket, else from the store itself. */
async function deadLetterCommand(config: AgentConfig, requeue: boolean): Promise<number> {
  const socketPath = socketPathOf(config);
  let letters: DeadLetter[] = [];
  let requeued: number | undefined;
  try {
    const res = await localRequest(socketPath, requeue ? { op: 'requeueDeadLetters' } : { op: 'deadLetters' });
    if (!res.ok) throw new FerryError(res.code as ErrorCode, res.message);
    letters = (res.deadLetters ?? []) as DeadLetter[];
    requeued = res.requeued;
  } catch (err) {
    if (!isFerryError(err, ErrorCode.AGENT_UNREACHABLE)) throw err;
    const store = await SegmentStore.open({ dir: storeDir(config) });
    try {
      if (requeue) requeued = await store.requeueDeadLetters();
      else letters = await store.deadLetters();
    } finally {
      await store.close();
    }
  }
  if (requeued !== undefined) {
    process.stdout.write(`requeued ${requeued} dead letters\n`);
    return 0;
  }
  for (const { packet, code, message } of letters) {
    process.stdout.write(`${JSON.stringify({ seq: packet.seq, target: packet.target, ts: packet.ts, code, message, data: dataToJson(packet.data) })}\n`);
  }
  return 0;
}
