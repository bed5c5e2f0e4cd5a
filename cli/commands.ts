import { parseArgs, type ParseArgsConfig } from 'node:util';
import { agentConfigSchema, type AgentConfig } from '../agent/config.js';
import { runAgent, socketPathOf, storeDir } from '../agent/main.js';
import { SegmentStore } from '../agent/store/segment-store.js';
import type { DeadLetter } from '../agent/store/store.js';
import { localRequest } from '../agent/local-api.js';
import { gatewayConfigSchema } from '../gateway/config.js';
import { runGateway } from '../gateway/main.js';
import { hostOf } from '../gateway/auth-posture.js';
import { agentSubcommands, agentSubcommandsHelp, isAgentSubcommand, runAgentSubcommand } from './gateway-agents.js';
import { appSubcommands, appSubcommandsHelp, isAppSubcommand, runAppSubcommand } from './gateway-apps.js';
import { runSim, simConfigSchema } from '../firmware-sim/index.js';
import { loadYamlFile } from '../hw/yaml-file.js';
import { ErrorCode, FerryError, isFerryError } from '../protocol/errors.js';
import { checkTarget, dataToJson } from '../protocol/packet.js';
import { loadConfig } from './load-config.js';
import { closeGraceMs } from '../common/shutdown.js';
import { runDemo } from './demo.js';

export interface Command {
  summary: string;
  help: string;
  /** Resolves with the exit code once the command is done (servers: once stopped by a signal). */
  run(args: string[]): Promise<number>;
}

function flags<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, (err as Error).message);
  }
}

const num = (v: string | undefined, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new FerryError(ErrorCode.CONFIG_INVALID, `${flag}: expected a number, got '${v}'`);
  return n;
};

/**
 * Runs until SIGINT/SIGTERM, then stops gracefully. A second signal, or `forceAfterMs` after the
 * first, exits 0 at once: what is durable stays (unacked packets are kept and sent again).
 */
function untilSignal(stop: () => Promise<void>, forceAfterMs?: number): Promise<number> {
  return new Promise((resolve) => {
    const force = (why: string): void => {
      process.stderr.write(`ferry: ${why}; exiting now with what is durable (unacked packets are sent again after the next start)\n`);
      process.exit(0);
    };
    const onSignal = (): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.once('SIGINT', () => force('a second signal while stopping'));
      process.once('SIGTERM', () => force('a second signal while stopping'));
      if (forceAfterMs !== undefined) setTimeout(() => force(`stopping took longer than ${forceAfterMs} ms`), forceAfterMs).unref();
      stop().then(() => resolve(0), () => resolve(1));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

const gateway: Command = {
  summary: 'run the gateway: accept agents, dispatch packets to handlers by target; manage its agents',
  help: `usage: ferry gateway --config FILE [--listen HOST:PORT] [--listen-tls HOST:PORT] [--data-dir DIR]
${agentSubcommandsHelp}
${appSubcommandsHelp}
  --config FILE     gateway configuration (YAML; see docs/config.md)
  --listen H:P      overrides listen.tcp (port 0 picks a free port)
  --listen-tls H:P  overrides listen.tls (needs tls.cert and tls.key in the configuration)
  --data-dir DIR    overrides dataDir (the dispatch log and the agent registry live here)

Prints "ferry gateway listening on HOST:PORT" for the plaintext listener,
"ferry gateway listening on tls://HOST:PORT" for the TLS one, and http:// or https://HOST:PORT
for the long-poll ones (listen.http, listen.https) once it accepts agents, then
"ferry gateway api listening on http(s)://HOST:PORT" for the application API (listen.api).
Stops on SIGINT/SIGTERM: takes nothing new, lets handlers finish and ack what they hold (at most
shutdownTimeoutMs), exits 0; a second signal exits at once. SIGHUP re-reads the configuration:
routes and the agent and application registries change live, sessions stay; an invalid file is
refused (logged) and the running configuration stays (docs/operations.md).
`,
  async run(args) {
    if (isAgentSubcommand(args[0])) return runAgentSubcommand(args[0], args.slice(1));
    if (isAppSubcommand(args[0])) return runAppSubcommand(args[0], args.slice(1));
    if (args[0] !== undefined && !args[0].startsWith('-')) {
      throw new FerryError(ErrorCode.CONFIG_INVALID, `gateway: unknown subcommand '${args[0]}' (known: ${[...agentSubcommands, ...appSubcommands].join(', ')}; without one, ferry gateway runs the gateway)`);
    }
    const f = flags(args, { config: { type: 'string' }, listen: { type: 'string' }, 'listen-tls': { type: 'string' }, 'data-dir': { type: 'string' } });
    const overrides = [
      { path: ['listen', 'tcp'], value: f.listen },
      { path: ['listen', 'tls'], value: f['listen-tls'] },
      { path: ['dataDir'], value: f['data-dir'] },
    ];
    const config = loadConfig(f.config, gatewayConfigSchema, overrides);
    const gw = await runGateway(config);
    // SIGHUP re-reads the file (the same flags apply); the gateway logs what it did or refused.
    const onHup = (): void => void gw.reload(() => loadConfig(f.config, gatewayConfigSchema, overrides));
    process.on('SIGHUP', onHup);
    if (config.listen.tcp !== undefined) process.stdout.write(`ferry gateway listening on ${hostOf(config.listen.tcp)}:${gw.ports.tcp}\n`);
    if (config.listen.tls !== undefined) process.stdout.write(`ferry gateway listening on tls://${hostOf(config.listen.tls)}:${gw.ports.tls}\n`);
    if (config.listen.http !== undefined) process.stdout.write(`ferry gateway listening on http://${hostOf(config.listen.http)}:${gw.ports.http}\n`);
    if (config.listen.https !== undefined) process.stdout.write(`ferry gateway listening on https://${hostOf(config.listen.https)}:${gw.ports.https}\n`);
    if (gw.apiUrl !== undefined) process.stdout.write(`ferry gateway api listening on ${gw.apiUrl}\n`);
    return untilSignal(() => {
      process.off('SIGHUP', onHup);
      return gw.stop();
    }, config.shutdownTimeoutMs + closeGraceMs);
  },
};

const agent: Command = {
  summary: 'run the agent: read sensors, store packets on flash, forward them to the gateway',
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

Prints "ferry agent running; local socket PATH" once started. Stops on SIGINT/SIGTERM (sends
nothing new, waits at most shutdownTimeoutMs for the gateway's acks; a second signal exits at once)
and then prints "ferry agent stopped; lastSeq N ackedSeq M backlog B".
`,
  async run(args) {
    const f = flags(args, {
      config: { type: 'string' }, gateway: { type: 'string' }, 'data-dir': { type: 'string' },
      profile: { type: 'string' }, id: { type: 'string' }, 'dead-letters': { type: 'boolean' }, 'requeue-dead-letters': { type: 'boolean' },
    });
    const config = loadConfig(f.config, agentConfigSchema, [
      { path: ['gateway'], value: f.gateway }, { path: ['dataDir'], value: f['data-dir'] },
      { path: ['profile'], value: f.profile }, { path: ['id'], value: f.id },
    ]);
    if (f['dead-letters'] || f['requeue-dead-letters']) return deadLetterCommand(config, f['requeue-dead-letters'] === true);
    const a = await runAgent(config);
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

const sim: Command = {
  summary: 'simulate a microcontroller on a pseudo-terminal, writing sensor readings',
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

const send: Command = {
  summary: 'hand one packet to the running agent; prints its seq once it is stored durably',
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
    let socketPath = f.socket;
    if (socketPath === undefined) {
      if (f.config === undefined) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, 'give --socket PATH or --config AGENT_CONFIG');
      const c = loadYamlFile(f.config, agentConfigSchema);
      socketPath = socketPathOf(c);
    }
    const res = await localRequest(socketPath, { op: 'send', target: f.target, data: data as never });
    if (!res.ok) throw new FerryError(res.code as ErrorCode, res.message);
    process.stdout.write(`${res.seq}\n`);
    return 0;
  },
};

/** Kept here (not imported from listen.ts) so `ferry --help` loads nothing more. */
const listenHelpText = `usage: ferry listen --target PATTERN (--socket PATH | --config AGENT_CONFIG) [--count N]

  --target PATTERN  the targets to take: exact (cfg/interval), prefix (cfg/*) or MQTT-style
                    (cmd/+/set, cmd/#); the agent routes them here with a downlink route "to: local"
  --socket PATH     the agent's local socket
  --config FILE     the agent's configuration: its socket (or DATADIR/agent.sock) is used
  --count N         exit 0 after N messages were printed and acked (default: run until SIGINT/SIGTERM)

Prints each message as one JSON line {"id","target","data","ts"} (data bytes as {"base64":...})
and acks it once the line is written. When several subscribers match, the oldest subscription
gets the message. Exits non-zero if the agent is not running or goes away. Framing: docs/downlink.md.
`;

const listen: Command = {
  summary: 'take downlink messages for a target from the running agent; prints each as a JSON line and acks it',
  help: listenHelpText,
  // Loaded when it runs: a long-lived subscriber needs none of the agent's or gateway's code.
  run: async (args) => (await import('./listen.js')).runListen(args),
};

const demo: Command = {
  summary: 'run gateway, simulator and agent together; kill and restart them; check every packet arrived once',
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

export const commands: Record<string, Command> = { gateway, agent, sim, send, listen, demo };
