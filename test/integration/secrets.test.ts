/**
 * Issue 10 case 3 against a real `ferry gateway` (dist/cli/ferry.js: run `npx tsc -p .` first), a
 * real mosquitto with a password file, and an HTTP server. The routes hold secrets the way users
 * write them: MQTT credentials in the URL (a closed port, and a wrong password against the real
 * broker) and a Slack-style webhook whose path is the token, against a server that answers 400 and
 * 503 and echoes the path back. A raw client and a real agent send to every route: no secret may
 * reach a NACK, the agent's dead letters or log, or the gateway's output at debug level. The
 * credentials given as keys (username, password, passwordFile) do authenticate at the broker.
 */
import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { localRequest } from '../../agent/local-api.js';
import { stopProcess } from '../../cli/proc.js';
import { FrameType, type DataFrame, type NackFrame } from '../../protocol/frames.js';
import { runFerry } from '../helpers/cli-run.js';
import { makeRig, waitFor } from '../helpers/ferry.js';
import { freePort } from '../helpers/free-port.js';
import { sayHello } from '../helpers/hello.js';
import { startMosquitto } from '../helpers/mosquitto.js';

const urlPassword = 's3cretPW';
const wrongPassword = 'wr0ngPW-secret';
const keyPassword = 'k3yPW-from-key';
const filePassword = 'f1lePW-from-file';
const hookToken = 'XXXXSECRET';
const bearer = 'tok-BEARER-secret';
/** Nothing of these may leave the gateway toward an agent or into its output. */
const secrets = [urlPassword, wrongPassword, keyPassword, filePassword, hookToken, bearer, 'T000/B000'];

const found = (text: string): string[] => secrets.filter((s) => text.includes(s));

/** Every file under `dir`, as text. */
async function allText(dir: string): Promise<string> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  const texts = await Promise.all(entries.filter((e) => e.isFile()).map((e) => readFile(join(e.parentPath, e.name), 'latin1')));
  return texts.join('\n');
}

t.test('secrets - no route secret reaches an agent, its dead letters, or the gateway\'s output (credentials in URLs, a token in a webhook path)', async (t) => {
  const broker = await startMosquitto({ users: { ferry: keyPassword } });
  t.teardown(() => broker.stop());
  const closedPort = await freePort();

  // A webhook that refuses: 400 for hook/400, 503 otherwise, and says which URL it was (servers do).
  const hits: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      hits.push(`${req.url} ${req.headers.authorization}`);
      res.statusCode = req.headers['ferry-target'] === 'hook/400' ? 400 : 503;
      res.end(`no such hook: ${req.url} (auth ${req.headers.authorization})`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const hookPort = (server.address() as AddressInfo).port;

  const rig = await makeRig({
    serial: false,
    agentId: 'pi-sec',
    routes: [
      `  - { match: "mqtt/closed/#", handler: mqtt, url: "mqtt://ferry:${urlPassword}@127.0.0.1:${closedPort}", publishTimeoutMs: 1000 }`,
      `  - { match: "mqtt/wrong/#", handler: mqtt, url: "mqtt://ferry:${wrongPassword}@127.0.0.1:${broker.port}", publishTimeoutMs: 1000 }`,
      `  - { match: "hook/#", handler: webhook, url: "http://127.0.0.1:${hookPort}/hooks/T000/B000/${hookToken}", headers: { Authorization: "Bearer ${bearer}" }, timeoutMs: 2000 }`,
      '',
    ].join('\n'),
    gatewayYaml: 'auth: { required: false }\nlog: { level: debug }\nlimits: { retriesInPlace: 0 }\n',
  });
  t.teardown(() => rig.cleanup());
  const gateway = await rig.start('gateway');

  // 1. A raw client: every NACK it gets, retryable or not, as sent.
  const { first, tr, frames } = await sayHello(t, `tcp://127.0.0.1:${rig.port}`, { agent: 'raw-sec' });
  t.equal(first?.t, FrameType.WELCOME, 'the raw client is welcomed');
  const targets = ['mqtt/closed/a', 'mqtt/wrong/a', 'hook/400', 'hook/503', 'mqtt/closed/a', 'hook/503'];
  const data: DataFrame = { t: FrameType.DATA, packets: targets.map((target, i) => ({ seq: i + 1, target, ts: Date.now(), data: { i } })) };
  tr.send(data);
  const nacks = await waitFor('a NACK for each packet', async () => {
    const got = frames.filter((f): f is NackFrame => f.t === FrameType.NACK);
    return targets.every((_, i) => got.some((n) => n.seq === i + 1)) ? got : undefined;
  }, 20_000);
  t.match(nacks.find((n) => n.seq === 3), { code: 'HANDLER_REJECTED' }, 'the 400 is a permanent HANDLER_REJECTED');
  t.ok(nacks.find((n) => n.seq === 4)?.retryAfterMs !== undefined, 'the 503 is retryable');
  for (const n of nacks) {
    t.same(found(n.message), [], `NACK ${n.seq} (${n.code}) carries no secret: ${n.message}`);
    t.notMatch(n.message, /127\.0\.0\.1|hooks|no such hook/, `NACK ${n.seq} names no backend address and repeats no backend text`);
  }
  t.ok(hits.some((h) => h.includes(hookToken) && h.includes(bearer)), 'the webhook did get the secret path and the bearer token (the route works)');

  // 2. The real agent: its dead letters and its log.
  const agent = await rig.start('agent');
  for (const target of ['hook/400', 'mqtt/closed/b', 'hook/503']) {
    const r = await localRequest(rig.socket, { op: 'send', target, data: { from: 'agent' } });
    t.ok(r.ok, `the agent stored a packet for ${target}`);
  }
  const agentDir = join(rig.dir, 'agent');
  await waitFor('the 400 in the agent\'s dead letters', async () => ((await allText(agentDir)).includes('HANDLER_REJECTED') ? true : undefined), 15_000);
  await waitFor('retryable NACKs at the agent (closed broker, 503)', async () => (((await rig.agentStats())?.retries ?? 0) >= 2 ? true : undefined), 15_000);
  t.same(found(await allText(agentDir)), [], 'the agent\'s data dir (store, dead letters) holds no secret');
  t.same(found(agent.output()), [], 'the agent\'s output holds no secret');

  // 3. The gateway's own output, at debug level, with everything above in it.
  const out = gateway.output();
  t.same(found(out), [], 'the gateway\'s stdout and stderr hold no secret');
  t.match(out, /routes\[0\]\.url carries credentials/, 'start-up warns that credentials in the URL belong in the keys');
  t.match(out, /"cause":"webhook http:\/\/127\.0\.0\.1:\d+\/… answered 400/, 'the gateway logged the cause, with the URL redacted');
});

t.test('secrets - mqtt username with password or passwordFile authenticates at a broker that refuses anonymous clients', async (t) => {
  const broker = await startMosquitto({ users: { ferry: keyPassword, filer: filePassword } });
  t.teardown(() => broker.stop());
  const rig = await makeRig({
    serial: false,
    routes: [
      `  - { match: "mqtt/key/#", handler: mqtt, url: "${broker.url}", username: ferry, password: "${keyPassword}", topic: "sec/{target}" }`,
      `  - { match: "mqtt/file/#", handler: mqtt, url: "${broker.url}", username: filer, passwordFile: "{dir}/mqtt.pw", topic: "sec/{target}" }`,
      '',
    ].join('\n'),
    gatewayYaml: 'auth: { required: false }\nlog: { level: debug }\n',
  });
  t.teardown(() => rig.cleanup());
  // The file a deployment writes with `echo PW > file`: its trailing newline is not part of the password.
  await writeFile(join(rig.dir, 'mqtt.pw'), `${filePassword}\n`);
  const yaml = join(rig.dir, 'gateway.yaml');
  await writeFile(yaml, (await readFile(yaml, 'utf8')).replace('{dir}', rig.dir));

  const sub = await connectAsync(broker.url, { username: 'ferry', password: keyPassword, protocolVersion: 5 });
  t.teardown(() => sub.endAsync());
  const published: string[] = [];
  sub.on('message', (topic) => published.push(topic));
  await sub.subscribeAsync('sec/#', { qos: 1 });

  const gateway = await rig.start('gateway');
  const { tr, frames } = await sayHello(t, `tcp://127.0.0.1:${rig.port}`, { agent: 'raw-keys' });
  tr.send({ t: FrameType.DATA, packets: [{ seq: 1, target: 'mqtt/key/a', ts: Date.now(), data: 1 }, { seq: 2, target: 'mqtt/file/a', ts: Date.now(), data: 2 }] });
  await waitFor('both publishes at the subscriber', async () => (published.includes('sec/mqtt/key/a') && published.includes('sec/mqtt/file/a') ? true : undefined), 10_000);
  t.same(frames.filter((f) => f.t === FrameType.NACK), [], 'no packet was refused');
  t.same(found(gateway.output()), [], 'the gateway\'s output holds neither password');
  t.notMatch(gateway.output(), /carries credentials/, 'no warning: the credentials are in their keys');

  // A password file that cannot be read stops the start, naming the field.
  await stopProcess(gateway);
  await writeFile(yaml, (await readFile(yaml, 'utf8')).replace(join(rig.dir, 'mqtt.pw'), join(rig.dir, 'missing.pw')));
  const bad = await runFerry(['gateway', '--config', yaml]);
  t.equal(bad.code, 1, 'the gateway does not start');
  t.match(bad.stderr, /routes\[1\]\.passwordFile: cannot read .*missing\.pw \(ENOENT\) \[CONFIG_INVALID\]/, 'CONFIG_INVALID naming the field and the file');
});
