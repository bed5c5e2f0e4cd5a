/**
 * The agent's local socket for a client command (`send`, `listen`): `--socket PATH` as given, or
 * read from the agent's configuration. The YAML reader and the zod schema are loaded only for
 * `--config`, so a client given `--socket` starts without them.
 */
import { ErrorCode, FerryError } from '../protocol/errors.js';

export async function agentSocketPath(f: { socket?: string | undefined; config?: string | undefined }): Promise<string> {
  if (f.socket !== undefined) return f.socket;
  if (f.config === undefined) throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, 'give --socket PATH or --config AGENT_CONFIG');
  const [{ loadYamlFile }, { agentConfigSchema, socketPathOf }] = await Promise.all([import('../hw/yaml-file.js'), import('../agent/config.js')]);
  return socketPathOf(loadYamlFile(f.config, agentConfigSchema));
}
