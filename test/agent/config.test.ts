/**
 * The agent configuration's gateway list and transport-choice keys (agent/config.ts), through the
 * same YAML loader the CLI uses (hw/yaml-file.ts), so the messages are the ones a user sees.
 */
import t from 'tap';
import { agentConfigSchema, gatewayUrls, isLongPollUrl, isSecureUrl } from '../../agent/config.js';
import { parseYaml } from '../../hw/yaml-file.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

const base = ['id: pi-1', 'dataDir: /tmp/ferry-agent-config-test'];
const load = (...lines: string[]) => parseYaml([...base, ...lines, ''].join('\n'), 'agent.yaml', agentConfigSchema);
const refusal = (...lines: string[]): string => {
  try {
    load(...lines);
  } catch (err) {
    if (err instanceof FerryError && err.code === ErrorCode.CONFIG_INVALID) return err.message;
    throw err;
  }
  throw new Error('expected CONFIG_INVALID');
};

t.test('agent config - gateway: one URL of each scheme, as before', async (t) => {
  for (const url of ['tcp://127.0.0.1:7800', 'tls://gw.example:7801', 'http://10.0.0.1:8080', 'https://gw.example:7443']) {
    const c = load(`gateway: ${url}`);
    t.equal(c.gateway, url);
    t.same(gatewayUrls(c), [url]);
  }
  t.equal(load('gateway: tcp://127.0.0.1:7800').link.fallbackAfterMs, 10_000, 'fallbackAfterMs defaults to 10 s');
  t.equal(load('gateway: tcp://127.0.0.1:7800').link.probeIntervalMs, 300_000, 'probeIntervalMs defaults to 5 min');
});

t.test('agent config - gateway: a list in order of preference', async (t) => {
  const c = load('gateway: [tls://gw:7800, https://gw:7443]');
  t.same(gatewayUrls(c), ['tls://gw:7800', 'https://gw:7443']);
  const block = load('gateway:', '  - tcp://gw:7800', '  - http://gw:7080', '  - https://gw:7443');
  t.same(gatewayUrls(block), ['tcp://gw:7800', 'http://gw:7080', 'https://gw:7443']);
  t.same(gatewayUrls(load('gateway: [https://gw:7443]')), ['https://gw:7443'], 'a list of one');
  t.same(['tcp://a:1', 'tls://a:1', 'http://a:1', 'https://a:1'].map((u) => [isLongPollUrl(u), isSecureUrl(u)]), [[false, false], [false, true], [true, false], [true, true]]);
});

t.test('agent config - gateway: bad values name the field and say what is expected', async (t) => {
  t.match(refusal('gateway: []'), /agent\.yaml:3: gateway: .*non-empty list/, 'an empty list');
  t.match(refusal('gateway: [tcp://gw:7800, ftp://gw:21]'), /agent\.yaml:3: gateway\.1: a URL like tcp:\/\/HOST:PORT/, 'a bad URL in the list names its index');
  t.match(refusal('gateway: https://gw.example/longpoll'), /gateway: a URL like/, 'no path: scheme://HOST:PORT only');
  t.match(refusal('gateway: 7800'), /gateway: expected a gateway URL .* or a non-empty list/, 'a number');
  t.match(refusal('token: x'), /agent\.yaml:1: gateway: missing; expected string/, 'missing');
  t.match(refusal('gateway: [tcp://gw:7800, tcp://gw:7800]'), /gateway\.1: tcp:\/\/gw:7800 is already in the list/, 'a repeated URL');
});

t.test('agent config - tls keys need a tls:// or https:// URL somewhere in the list', async (t) => {
  t.match(refusal('gateway: [tcp://gw:7800, http://gw:7080]', 'tls:', '  servername: gw.example'), /tls: tls settings need a tls:\/\/ or https:\/\/ gateway URL/);
  t.equal(load('gateway: https://gw:7443', 'tls:', '  servername: gw.example').tls?.servername, 'gw.example', 'https:// alone takes them');
  t.ok(load('gateway: [tcp://gw:7800, https://gw:7443]', 'tls:', '  servername: gw.example').tls, 'in a list');
});

t.test('agent config - link.fallbackAfterMs and link.probeIntervalMs: positive integers', async (t) => {
  const c = load('gateway: [tls://gw:7800, https://gw:7443]', 'link:', '  fallbackAfterMs: 2500', '  probeIntervalMs: 60000');
  t.equal(c.link.fallbackAfterMs, 2500);
  t.equal(c.link.probeIntervalMs, 60_000);
  t.match(refusal('gateway: tcp://gw:7800', 'link:', '  fallbackAfterMs: 0'), /link\.fallbackAfterMs: /);
  t.match(refusal('gateway: tcp://gw:7800', 'link:', '  probeIntervalMs: 1.5'), /link\.probeIntervalMs: /);
});
