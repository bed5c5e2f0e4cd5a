/**
 * The gateway's DownlinkSender over the real DownlinkStore (SimDisk) and the agent's DownlinkInbox
 * wired to it in memory: a message whose verdict could not be written, on either side, is neither
 * left delivered for good nor holds the window (reproductions from the issue 12 review).
 */
import t from 'tap';
import { MemoryAnsweredLog, type AnsweredLog, type DownlinkMessage, type Verdict } from '../../agent/downlink/consumer.js';
import { DownlinkInbox } from '../../agent/downlink/inbox.js';
import { silentLog } from '../../common/log.js';
import { DownlinkSender } from '../../gateway/downlink/sender.js';
import { DownlinkStore } from '../../gateway/downlink/store.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import { limitsDefault, ManualClock } from './downlink-queue-contract.js';
import { until } from '../helpers/wait.js';
import { Rng } from '../sim/rng.js';
import { SimDisk } from '../sim/sim-disk.js';

const dir = '/gw/downlink';
const clockFor = (c: ManualClock) => ({ now: c.now, setTimeout: (f: () => void, ms: number) => setTimeout(f, ms), clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout) });

async function openStore(disk: SimDisk, clock: ManualClock): Promise<DownlinkStore> {
  return DownlinkStore.open({ dir, files: disk.process('gw'), clock, log: silentLog, limits: limitsDefault });
}

function sender(store: DownlinkStore, clock: ManualClock, window = { messages: 4, bytes: 1 << 20 }, onSend: (f: Frame) => void = () => undefined): { s: DownlinkSender; sent: Frame[]; ids(): string[] } {
  const sent: Frame[] = [];
  const s = new DownlinkSender('x', window, {
    queues: store, clock: clockFor(clock), log: silentLog, frameBytesMax: 1 << 20,
    send: (f) => {
      sent.push(f);
      onSend(f);
    },
    bye: () => undefined,
  });
  return { s, sent, ids: () => sent.flatMap((f) => (f.t === FrameType.DOWN ? f.messages.map((m) => m.id) : [])) };
}

t.test('downlink verdict faults - a DOWN_ACK whose verdict write failed: the message is sent again (this session or the next), never left delivered for good', async (t) => {
  const disk = new SimDisk({ rng: new Rng(12).fn });
  const clock = new ManualClock();
  const store = await openStore(disk, clock);
  const r = await store.enqueue('x', { target: 'cmd/a', data: 'a' });
  const a = (r as { id: string }).id;
  const one = sender(store, clock);
  await until(() => one.ids().includes(a), 'a sent on session 1');
  disk.faults.writeEioP = 1;
  one.s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: a, ok: true }] });
  await one.s.flushed();
  disk.faults.writeEioP = 0;
  // The session ends (the agent reconnects); a new one starts.
  one.s.close();
  const two = sender(store, clock);
  await until(() => two.ids().includes(a) || one.ids().filter((x) => x === a).length > 1, 'a sent again (the agent answers a repeat from its record)', 2000)
    .catch((err: Error) => t.fail(`${err.message}; its state: ${store.get('x', a)?.state}`));
  two.s.close();
  await store.close();
});

t.test('downlink verdict faults - a session that ends while its DOWN_ACK fails to be written: the message is queued again', async (t) => {
  const disk = new SimDisk({ rng: new Rng(13).fn });
  const clock = new ManualClock();
  const store = await openStore(disk, clock);
  const a = ((await store.enqueue('x', { target: 'cmd/a', data: 'a' })) as { id: string }).id;
  const one = sender(store, clock);
  await until(() => one.ids().includes(a), 'a sent on session 1');
  disk.faults.writeEioP = 1;
  one.s.onAck({ t: FrameType.DOWN_ACK, results: [{ id: a, ok: true }] });
  one.s.close(); // the connection drops while the verdict is being written
  await one.s.flushed();
  disk.faults.writeEioP = 0;
  t.equal(store.get('x', a)?.state, 'queued', 'not final, no session has it: queued again');
  await store.close();
});

t.test('downlink verdict faults - agent: a verdict the answered log could not record does not hold the gateway window; the next message comes', async (t) => {
  const disk = new SimDisk({ rng: new Rng(14).fn });
  const clock = new ManualClock();
  const store = await openStore(disk, clock);
  const ids: string[] = [];
  for (const x of ['a', 'b']) ids.push(((await store.enqueue('x', { target: 'cmd/x', data: x })) as { id: string }).id);
  const mem = new MemoryAnsweredLog(100);
  let failOnce = true;
  const answered: AnsweredLog = {
    get: (id) => mem.get(id),
    record: (res) => {
      if (failOnce) {
        failOnce = false;
        return Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' }));
      }
      return mem.record(res);
    },
    get size() {
      return mem.size;
    },
    close: () => mem.close(),
  };
  const handed: string[] = [];
  const consumer = { deliver: async (m: DownlinkMessage): Promise<Verdict> => (handed.push(String(m.data)), { ok: true }) };
  const inbox = new DownlinkInbox({ messagesMax: 1, bytesMax: 1 << 20, limits: { dataBytesMax: 1024, dataDepthMax: 8 } }, { route: () => consumer, answered, clock: clockFor(clock), log: silentLog });
  // Wire the gateway's sender to the agent's inbox, as one live session over a perfect link.
  const s = sender(store, clock, { messages: 1, bytes: 1 << 20 }, (f) => {
    if (f.t === FrameType.DOWN) setImmediate(() => inbox.onDown(f));
  }).s;
  inbox.open({ send: (f) => void (f.t === FrameType.DOWN_ACK && s.onAck(f)), close: () => undefined });
  await until(() => handed.length === 2, 'b reaches the consumer while the link stays up', 2000)
    .catch((err: Error) => t.fail(`${err.message}; handed ${JSON.stringify(handed)}, states ${ids.map((id) => store.get('x', id)?.state).join(',')}`));
  s.close();
  await inbox.close();
  await store.close();
});
