/**
 * The `serial` downlink consumer (agent/downlink/serial-consumer.ts) through the agent's real
 * SerialSource over a real pseudo-terminal pair (socat, firmware-sim/pty.ts): the test plays the
 * device on the other side, then the real firmware simulator answers `interval=`.
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { SerialCommands, commandLine } from '../../agent/downlink/serial-consumer.js';
import type { DownlinkMessage } from '../../agent/downlink/consumer.js';
import { LineSplitter } from '../../agent/sources/line-splitter.js';
import { SerialSource } from '../../agent/sources/serial-source.js';
import type { Reading } from '../../agent/sources/line-parser.js';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import { openPtyPair, runSim, simConfigSchema } from '../../firmware-sim/index.js';
import type { PacketData } from '../../protocol/packet.js';
import { pollUntil } from '../helpers/wait.js';

const msg = (data: PacketData, id = 'm-1'): DownlinkMessage => ({ id, target: 'dev/cmd', data, ts: 1_700_000_000_000 });

/** The device's side of the pair: collects the lines the agent writes; `say` writes lines back. */
interface Device {
  lines: string[];
  say(text: string): Promise<void>;
  close(): Promise<void>;
}

async function openDevice(path: string): Promise<Device> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const lines: string[] = [];
  const splitter = new LineSplitter(4096);
  port.on('data', (chunk: Buffer) => lines.push(...splitter.push(chunk)));
  return {
    lines,
    say: (text) => new Promise((resolve, reject) => port.write(text, (err) => (err ? reject(err) : resolve()))),
    close: () => new Promise((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve())),
  };
}

async function rig(t: Test, opts: { start?: boolean } = {}): Promise<{ source: SerialSource; commands: SerialCommands; device: Device; readings: Reading[]; closePair(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-serial-dl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pair = await openPtyPair(join(dir, 'tty0'));
  t.teardown(() => pair.close());
  const readings: Reading[] = [];
  const source = new SerialSource({ name: 'mcu', path: pair.devicePath, baudRate: 115200, format: 'kv', reopenDelayMs: 60_000 }, { clock: realClock, log: silentLog, onReading: (r) => readings.push(r) });
  t.teardown(() => source.stop());
  const commands = new SerialCommands(source, { clock: realClock, log: silentLog });
  const device = await openDevice(pair.simPath);
  t.teardown(() => device.close());
  if (opts.start !== false) {
    source.start();
    await pollUntil(() => source.isOpen, 5000, 'the source to open');
  }
  return { source, commands, device, readings, closePair: () => pair.close() };
}

/** Answers each command line the device gets with `answer(line)` (or nothing for undefined). */
function answering(device: Device, answer: (line: string) => string | undefined): void {
  let seen = 0;
  const timer = setInterval(() => {
    while (seen < device.lines.length) {
      const a = answer(device.lines[seen++]!);
      if (a !== undefined) void device.say(a);
    }
  }, 5);
  timer.unref();
}

t.test('serial - ok accepts; the answer is not a reading; readings before it still are', async (t) => {
  const { commands, device, readings, source } = await rig(t);
  answering(device, (line) => (line === 'interval=200' ? 't=1.5\nok interval=200\nt=2.5\n' : undefined));
  t.same(await commands.consumer(5000).deliver(msg('interval=200')), { ok: true });
  t.same(device.lines, ['interval=200'], 'one command line, as the string');
  await pollUntil(() => readings.length === 2, 5000, 'both readings');
  t.same(readings, [{ t: 1.5 }, { t: 2.5 }]);
  t.equal(source.stats().invalidLines, 0, 'the answer was not parsed as a (bad) reading');
  t.equal(source.stats().answers, 1);
});

t.test('serial - err REASON refuses with DOWNLINK_REFUSED and the reason', async (t) => {
  const { commands, device } = await rig(t);
  answering(device, () => 'err bad value: interval=abc\r\n');
  t.same(await commands.consumer(5000).deliver(msg('interval=abc')), { ok: false, code: 'DOWNLINK_REFUSED', reason: 'bad value: interval=abc' });
});

t.test('serial - no answer within timeoutMs: DOWNLINK_TIMEOUT; a late answer goes to nobody', async (t) => {
  const { commands, device, source } = await rig(t);
  t.match(await commands.consumer(200).deliver(msg('interval=5')), { ok: false, code: 'DOWNLINK_TIMEOUT', reason: /within 200 ms/ });
  t.same(device.lines, ['interval=5'], 'it was written');
  await device.say('ok interval=5\n');
  await pollUntil(() => source.stats().answers === 1, 5000, 'the late answer to be read');
  // The next command gets its own answer, not the late one (which came while none was waiting).
  answering(device, (line) => (line === 'threshold=3' ? 'err unknown command: threshold=3\n' : undefined));
  t.match(await commands.consumer(5000).deliver(msg('threshold=3')), { ok: false, code: 'DOWNLINK_REFUSED' });
});

t.test('serial - a JSON value is written as its JSON text, bytes as they are', async (t) => {
  const { commands, device } = await rig(t);
  answering(device, () => 'ok\n');
  t.same(await commands.consumer(5000).deliver(msg({ interval: 200 })), { ok: true });
  t.same(await commands.consumer(5000).deliver(msg(new Uint8Array(Buffer.from('rate=7')))), { ok: true });
  t.same(await commands.consumer(5000).deliver(msg(42)), { ok: true });
  t.same(device.lines, ['{"interval":200}', 'rate=7', '42']);
});

t.test('serial - a line break or an empty command is refused before anything is written', async (t) => {
  const { commands, device } = await rig(t);
  for (const data of ['interval=1\ninterval=2', 'a\rb', '', new Uint8Array([65, 10]), new Uint8Array([])] as PacketData[]) {
    t.match(await commands.consumer(5000).deliver(msg(data)), { ok: false, code: 'DOWNLINK_INVALID' }, JSON.stringify(String(data)));
  }
  t.same(commandLine({ a: 'x\ny' }), { line: Buffer.from('{"a":"x\\ny"}') }, 'inside JSON text a newline is escaped: that one is fine');
  answering(device, () => 'ok\n');
  t.same(await commands.consumer(5000).deliver(msg({ a: 'x\ny' })), { ok: true });
  t.same(await commands.consumer(5000).deliver(msg('after')), { ok: true });
  t.same(device.lines, ['{"a":"x\\ny"}', 'after'], 'only the valid ones reached the device');
});

t.test('serial - the source not open: DOWNLINK_NO_CONSUMER at once', async (t) => {
  const { commands, device } = await rig(t, { start: false });
  t.match(await commands.consumer(5000).deliver(msg('interval=1')), { ok: false, code: 'DOWNLINK_NO_CONSUMER', reason: /not open/ });
  t.same(device.lines, []);
});

t.test('serial - the device going away before it answered: DOWNLINK_NO_CONSUMER', async (t) => {
  const { commands, device, closePair } = await rig(t);
  const r = commands.consumer(30_000).deliver(msg('interval=1'));
  await pollUntil(() => device.lines.length === 1, 5000, 'the command to arrive');
  await closePair(); // unplugged
  t.match(await r, { ok: false, code: 'DOWNLINK_NO_CONSUMER' });
  t.match(await commands.consumer(5000).deliver(msg('interval=2')), { ok: false, code: 'DOWNLINK_NO_CONSUMER', reason: /not open/ }, 'and while it is gone');
});

t.test('serial - one command in flight per device: the second is written after the first is answered', async (t) => {
  const { commands, device, readings } = await rig(t);
  const a = commands.consumer(5000).deliver(msg('first', 'm-a'));
  const b = commands.consumer(5000).deliver(msg('second', 'm-b'));
  await pollUntil(() => device.lines.length === 1, 5000, 'the first command');
  // Without the lock both would have been written at once; a reading makes a round trip first.
  await device.say('t=1\n');
  await pollUntil(() => readings.length === 1, 5000, 'the reading');
  t.same(device.lines, ['first'], 'the second waits');
  await device.say('err no\n');
  t.match(await a, { ok: false, reason: 'no' });
  await pollUntil(() => device.lines.length === 2, 5000, 'the second command');
  await device.say('ok\n');
  t.same(await b, { ok: true }, 'each got its own answer');
});

t.test('serial - with the real firmware simulator: interval=200 is obeyed and answered ok', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-serial-sim-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sim = await runSim(simConfigSchema.parse({ link: join(dir, 'tty0'), rateHz: 50 }));
  t.teardown(() => sim.stop());
  const readings: Reading[] = [];
  const source = new SerialSource({ path: sim.devicePath, baudRate: 115200, format: 'kv', reopenDelayMs: 60_000 }, { clock: realClock, log: silentLog, onReading: (r) => readings.push(r) });
  t.teardown(() => source.stop());
  source.start();
  await pollUntil(() => readings.length > 5, 5000, 'readings');
  const commands = new SerialCommands(source, { clock: realClock, log: silentLog });
  t.same(await commands.consumer(5000).deliver(msg('interval=200')), { ok: true });
  t.match(await commands.consumer(5000).deliver(msg('interval=fast')), { ok: false, code: 'DOWNLINK_REFUSED', reason: /^bad value: interval=fast/ });
  t.match(await commands.consumer(5000).deliver(msg('reboot')), { ok: false, code: 'DOWNLINK_REFUSED', reason: 'unknown command: reboot' });
  t.same(await commands.consumer(5000).deliver(msg('threshold=22')), { ok: true });
  await pollUntil(() => readings.some((r) => 'alarm' in r), 5000, 'a reading with the alarm field');
  t.equal(source.stats().invalidLines, 0, 'no answer was taken for a reading');
});
