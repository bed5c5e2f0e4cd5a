/** `ferry gateway`: runs the gateway, or manages its agents and applications (subcommands). */
import { gatewayConfigSchema } from '../gateway/config.js';
import { hostOf } from '../gateway/auth-posture.js';
import { ErrorCode, FerryError } from '../protocol/errors.js';
import { flags } from './args.js';
import type { Command } from './command.js';
import { agentSubcommands, agentSubcommandsHelp, isAgentSubcommand, runAgentSubcommand } from './gateway-agents.js';
import { appSubcommands, appSubcommandsHelp, isAppSubcommand, runAppSubcommand } from './gateway-apps.js';
import { loadConfig } from './load-config.js';
import { closeGraceMs } from '../common/shutdown.js';
import { untilSignal } from './until-signal.js';

export const command: Command = {
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
"ferry gateway api listening on http(s)://HOST:PORT" for the application API (listen.api), and
"ferry gateway admin listening on http://HOST:PORT" for the admin endpoint (listen.admin: status page, /status, /metrics).
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
    const config = loadConfig(f.config, gatewayConfigSchema, overrides, 'gateway');
    // Loaded here, not at the top: add-agent, apps and the other registry commands need none of it.
    const { runGateway } = await import('../gateway/main.js');
    const gw = await runGateway(config);
    // SIGHUP re-reads the file (the same flags apply); the gateway logs what it did or refused.
    const onHup = (): void => void gw.reload(() => loadConfig(f.config, gatewayConfigSchema, overrides, 'gateway'));
    process.on('SIGHUP', onHup);
    if (config.listen.tcp !== undefined) process.stdout.write(`ferry gateway listening on ${hostOf(config.listen.tcp)}:${gw.ports.tcp}\n`);
    if (config.listen.tls !== undefined) process.stdout.write(`ferry gateway listening on tls://${hostOf(config.listen.tls)}:${gw.ports.tls}\n`);
    if (config.listen.http !== undefined) process.stdout.write(`ferry gateway listening on http://${hostOf(config.listen.http)}:${gw.ports.http}\n`);
    if (config.listen.https !== undefined) process.stdout.write(`ferry gateway listening on https://${hostOf(config.listen.https)}:${gw.ports.https}\n`);
    if (gw.apiUrl !== undefined) process.stdout.write(`ferry gateway api listening on ${gw.apiUrl}\n`);
    if (gw.adminUrl !== undefined) process.stdout.write(`ferry gateway admin listening on ${gw.adminUrl}\n`);
    return untilSignal(() => {
      process.off('SIGHUP', onHup);
      return gw.stop();
    }, config.shutdownTimeoutMs + closeGraceMs);
  },
};
