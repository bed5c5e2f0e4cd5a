import t from 'tap';
import { fileURLToPath } from 'node:url';
import { agentConfigSchema } from '../../agent/config.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { loadYamlFile } from '../../hw/yaml-file.js';

const example = (name: string): string => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));

t.test('examples - the example configurations in the README load as they are', async (t) => {
  const gw = await loadYamlFile(example('gateway.yaml'), gatewayConfigSchema);
  t.equal(gw.routes.length, 2, 'gateway.yaml: both routes');
  t.equal(gw.listen.tcp, '127.0.0.1:7800');
  const agent = await loadYamlFile(example('agent.yaml'), agentConfigSchema);
  t.equal(agent.id, 'greenhouse-1', 'agent.yaml');
  t.equal(agent.rules.length, 3);
  // Secure by default (issue 10, case 2): the examples authenticate, and the agent has a token to fill in.
  t.equal(gw.auth.required, true, 'gateway.yaml: authentication on');
  t.equal(gw.auth.allowUnauthenticatedRemote, false);
  t.ok(agent.token !== undefined && agent.token.length > 0, 'agent.yaml: a token');
});
