import t from 'tap';
import { FrameType, frameFromValue } from '../../protocol/frames.js';

t.test('frames - PING carries the agent backlog as optional unsigned integers', async (t) => {
  t.same(frameFromValue({ t: FrameType.PING, id: 1, ackedSeq: 5, backlogPackets: 3, backlogBytes: 4096, oldestAgeMs: 1200 }), { t: FrameType.PING, id: 1, ackedSeq: 5, backlogPackets: 3, backlogBytes: 4096, oldestAgeMs: 1200 });
  t.same(frameFromValue({ t: FrameType.PING, id: 2 }), { t: FrameType.PING, id: 2 }, 'an older agent\'s PING still decodes');
  for (const bad of [{ backlogPackets: -1 }, { backlogBytes: 1.5 }, { oldestAgeMs: 'x' }, { backlogPackets: 2 ** 53 }]) {
    t.throws(() => frameFromValue({ t: FrameType.PING, id: 3, ...bad }), { code: 'FRAME_MALFORMED' }, JSON.stringify(bad));
  }
});
