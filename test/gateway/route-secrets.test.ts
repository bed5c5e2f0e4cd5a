/**
 * Issue 10 case 3, the configuration side: MQTT credentials as keys or a password file, still
 * accepted in the URL but never shown; webhook and MQTT errors that name no secret.
 */
import t from 'tap';
import { EventEmitter } from 'node:events';
import type { IClientOptions, MqttClient } from 'mqtt';
import { gatewayConfigSchema, type RouteConfig } from '../../gateway/config.js';
import { createMqttHandler, credentialsFromUrl } from '../../gateway/handlers/mqtt.js';
import { createWebhookHandler } from '../../gateway/handlers/webhook.js';
import { mqttCredentials, readPasswordFile, routeSecrets } from '../../gateway/route-secrets.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

type MqttRoute = Extract<RouteConfig, { handler: 'mqtt' }>;
const mqttRoute = (extra: Record<string, unknown>): MqttRoute => {
  const c = gatewayConfigSchema.parse({ listen: { tcp: '127.0.0.1:0' }, dataDir: '/tmp/x', routes: [{ match: '#', handler: 'mqtt', url: 'mqtt://127.0.0.1:1883', ...extra }] });
  return c.routes[0] as MqttRoute;
};
const files = (map: Record<string, string>) => (path: string): string => {
  const text = map[path];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: 'ENOENT' });
  return text;
};
const codeOf = (fn: () => unknown): { code?: string; message: string } => {
  try {
    fn();
  } catch (err) {
    return { code: (err as FerryError).code, message: (err as Error).message };
  }
  return { message: 'no throw' };
};

t.test('route secrets - passwordFile is read with its trailing newline dropped; a missing or empty file names the field', async (t) => {
  const read = files({ '/etc/pw': 's3cretPW\n', '/etc/crlf': 's3cretPW\r\n', '/etc/empty': '\n' });
  t.equal(readPasswordFile('/etc/pw', 'routes[1].passwordFile', read), 's3cretPW');
  t.equal(readPasswordFile('/etc/crlf', 'routes[1].passwordFile', read), 's3cretPW');
  t.match(codeOf(() => readPasswordFile('/etc/none', 'routes[1].passwordFile', read)), { code: ErrorCode.CONFIG_INVALID, message: 'routes[1].passwordFile: cannot read /etc/none (ENOENT)' });
  t.match(codeOf(() => readPasswordFile('/etc/empty', 'routes[1].passwordFile', read)), { code: ErrorCode.CONFIG_INVALID, message: /routes\[1\]\.passwordFile: .* is empty/ });
  t.same(mqttCredentials(mqttRoute({ username: 'ferry', passwordFile: '/etc/pw' }), 'routes[0]', read), { username: 'ferry', password: 's3cretPW', inUrl: false });
  t.same(mqttCredentials(mqttRoute({ username: 'ferry', password: 'k3y' }), 'routes[0]', read), { username: 'ferry', password: 'k3y', inUrl: false });
});

t.test('route secrets - password and passwordFile are exclusive; URL credentials with keys are refused; URL credentials alone still work', async (t) => {
  const both = gatewayConfigSchema.safeParse({ listen: { tcp: '127.0.0.1:0' }, dataDir: '/tmp/x', routes: [{ match: '#', handler: 'mqtt', url: 'mqtt://h:1', password: 'a', passwordFile: '/b' }] });
  t.notOk(both.success, 'the schema refuses both');
  t.match(both.error?.issues[0], { path: ['routes', 0, 'passwordFile'], message: 'give password or passwordFile, not both' });
  const mixed = codeOf(() => mqttCredentials(mqttRoute({ url: 'mqtt://ferry:s3cretPW@h:1', username: 'x' }), 'routes[0]', files({})));
  t.match(mixed, { code: ErrorCode.CONFIG_INVALID, message: /routes\[0\]\.url: credentials in the url and in username/ });
  t.notMatch(mixed.message, /s3cretPW/, 'the refusal does not repeat the password');
  const inUrl = mqttCredentials(mqttRoute({ url: 'mqtt://ferry:s3cretPW@h:1' }), 'routes[0]', files({}));
  t.same(inUrl, { inUrl: true }, 'URL credentials: flagged for the start-up warning');
  t.same(credentialsFromUrl('mqtt://fe%40rry:s3cret%2FPW@h:1883/x'), { url: 'mqtt://h:1883/x', username: 'fe@rry', password: 's3cret/PW' }, 'taken out of the URL, percent-decoded');
  t.same(credentialsFromUrl('mqtt://h:1883'), { url: 'mqtt://h:1883' });
});

t.test('route secrets - routeSecrets lists passwords from keys, files and URLs, and webhook header values', async (t) => {
  const routes = gatewayConfigSchema.parse({
    listen: { tcp: '127.0.0.1:0' }, dataDir: '/tmp/x', routes: [
      { match: 'a', handler: 'mqtt', url: 'mqtt://u:url%2Fpw@h:1' },
      { match: 'b', handler: 'mqtt', url: 'mqtt://h:1', username: 'u', passwordFile: '/pw' },
      { match: 'c', handler: 'webhook', url: 'http://h/x', headers: { Authorization: 'Bearer tok-123456' } },
      { match: 'd', handler: 'file', path: '/tmp/out' },
    ],
  }).routes;
  const creds = routes.map((r, i) => (r.handler === 'mqtt' ? mqttCredentials(r, `routes[${i}]`, files({ '/pw': 'filePW\n' })) : undefined));
  const s = routeSecrets(routes, creds);
  for (const want of ['url/pw', 'url%2Fpw', 'filePW', 'Bearer tok-123456', 'tok-123456']) t.ok(s.includes(want), `has ${want}`);
});

/** A stand-in for mqtt.js's client that never connects: enough to see what the handler hands to connect(). */
function fakeClient(): MqttClient {
  return Object.assign(new EventEmitter(), { end: (_f: boolean, _o: object, cb: () => void) => cb(), outgoing: {} }) as unknown as MqttClient;
}

t.test('mqtt handler - URL credentials reach the broker as username/password; the URL mqtt.js gets and every message are without them', async (t) => {
  let seen: { url: string; opts: IClientOptions } | undefined;
  const logged: string[] = [];
  const client = fakeClient();
  const h = createMqttHandler({ url: 'mqtt://ferry:s3cretPW@127.0.0.1:1883', topic: 't/{target}', log: (m, f) => logged.push(m + JSON.stringify(f)) }, {
    connect: (url, opts) => {
      seen = { url, opts };
      return client;
    },
  });
  t.equal(seen?.url, 'mqtt://127.0.0.1:1883', 'mqtt.js gets the URL without userinfo');
  t.match(seen?.opts, { username: 'ferry', password: 's3cretPW' }, 'and the credentials as options');
  const events = client as unknown as EventEmitter;
  events.emit('error', new Error('Connection refused: Not authorized for ferry:s3cretPW'));
  events.emit('connect');
  events.emit('close');
  const r = await h.handle({ agent: 'a', seq: 1, target: 'x', ts: 0, data: 1 });
  t.match(r, { ok: false, retryable: true }, 'disconnected: retryable');
  const all = logged.join('\n') + (r.ok ? '' : r.message);
  t.notMatch(all, /s3cretPW/, 'no password in any log line or message');
  t.match(all, /mqtt:\/\/127\.0\.0\.1:1883/, 'the broker is named by host and port');
  await h.close();

  const bad = codeOf(() => createMqttHandler({ url: 'mqtt://ferry:s3cretPW@h:1', topic: 't', username: 'x' }, { connect: () => fakeClient() }));
  t.match(bad, { code: ErrorCode.CONFIG_INVALID });
  t.notMatch(bad.message, /s3cretPW/, 'a refusal does not repeat the password');
  const thrown = codeOf(() => createMqttHandler({ url: 'mqtt://ferry:s3cretPW@h:1/path?token=QQQQ', topic: 't' }, { connect: () => { throw new Error('bad url mqtt://ferry:s3cretPW@h:1/path?token=QQQQ'); } }));
  t.match(thrown, { code: ErrorCode.CONFIG_INVALID, message: /mqtt:\/\/h:1\/…/ });
  t.notMatch(thrown.message, /s3cretPW|QQQQ/, 'a URL mqtt.js refuses is shown redacted');
});

t.test('webhook handler - a bad URL is refused without repeating it', async (t) => {
  const r = codeOf(() => createWebhookHandler({ url: 'ftp://h.example/hooks/T000/B000/XXXXSECRET' }));
  t.match(r, { code: ErrorCode.CONFIG_INVALID, message: /ftp:\/\/h\.example\/… is not an http/ });
  t.notMatch(r.message, /XXXXSECRET/);
});
