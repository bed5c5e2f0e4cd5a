/**
 * A verdict the answered log could not record is tried again until it is, then answered; the
 * messages behind it wait. Left unanswered (as before), its message held its place in the
 * gateway's window for as long as the session lived: for good in a session that never ended
 * (simulator seed 300076). Its consumer is handed it once.
 */
import t from 'tap';
import { MemoryAnsweredLog, type AnsweredLog, type DownlinkMessage, type Verdict } from '../../agent/downlink/consumer.js';
import { DownlinkInbox, recordRetryMs } from '../../agent/downlink/inbox.js';
import { silentLog } from '../../common/log.js';
import { FrameType, type DownResult, type Frame } from '../../protocol/frames.js';
import { FakeClock } from './fixtures/fake-clock.js';

const turns = async (n = 5): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

t.test('downlink inbox - a verdict that could not be recorded is tried again, then answered; the next message waits', async (t) => {
  const clock = new FakeClock();
  const memory = new MemoryAnsweredLog(16);
  let failures = 2;
  const answered: AnsweredLog = {
    get: (id) => memory.get(id),
    get size() {
      return memory.size;
    },
    close: () => memory.close(),
    record: (r: DownResult) => (failures-- > 0 ? Promise.reject(Object.assign(new Error('no space'), { code: 'ENOSPC' })) : memory.record(r)),
  };
  const handed: string[] = [];
  const consumer = { deliver: async (m: DownlinkMessage): Promise<Verdict> => (handed.push(m.id), { ok: true }) };
  const inbox = new DownlinkInbox({ messagesMax: 4, bytesMax: 1 << 16, limits: { dataBytesMax: 1024, dataDepthMax: 8 } }, { route: () => consumer, answered, clock, log: silentLog });
  const acks: DownResult[][] = [];
  inbox.open({ send: (f: Frame) => (f.t === FrameType.DOWN_ACK ? void acks.push(f.results) : undefined), close: () => undefined });
  inbox.onDown({ t: FrameType.DOWN, messages: [{ id: 'm1', target: 'cmd/x', data: 1, ts: 0 }, { id: 'm2', target: 'cmd/x', data: 2, ts: 0 }] });
  await turns();
  t.same(handed, ['m1'], 'm1 handed on; m2 waits behind it');
  t.same(acks, [], 'nothing answered while the verdict is not recorded');
  clock.advance(recordRetryMs);
  await turns();
  t.same(acks, [], 'the second try failed too');
  clock.advance(recordRetryMs);
  await turns();
  t.same(acks.flat().map((r) => r.id), ['m1', 'm2'], 'recorded at the third try: m1 answered, then m2');
  t.same(handed, ['m1', 'm2'], 'each handed on once');
  t.ok(memory.get('m1'), 'm1 is in the answered log');
});
