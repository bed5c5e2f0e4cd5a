import t from 'tap';
import { checkRequestOrder, HoldPolicy, RequestOrder, requestOrder } from '../../protocol/longpoll/hold-policy.js';
import { RequestPolicy } from '../../protocol/longpoll/request-policy.js';
import { ErrorCode } from '../../protocol/errors.js';
import { refuses } from '../helpers/refuses.js';

t.test('longpoll hold - one request held; the next arrival answers it, even empty', async (t) => {
  const h = new HoldPolicy<string>({ holdMs: 25_000, lingerMs: 20 });
  t.same(h.request('r1', 0, false), [], 'r1 held');
  t.equal(h.held, 'r1');
  t.equal(h.deadlineMs(), 25_000);
  t.same(h.request('r2', 100, false), ['r1'], 'r2 answers r1');
  t.equal(h.held, 'r2');
  t.equal(h.tick(25_099), undefined, 'not yet');
  t.equal(h.tick(25_100), 'r2', 'the hold limit, counted from its arrival');
  t.equal(h.held, undefined);
  t.equal(h.deadlineMs(), undefined);
});

t.test('longpoll hold - a full bundle answers at once: the held one, or a new one when none is held', async (t) => {
  const h = new HoldPolicy<number>();
  t.same(h.request(1, 0, true), [1], 'nothing held, full bundle: answered at once');
  t.equal(h.held, undefined);
  t.same(h.request(2, 5, false), []);
  t.equal(h.bundleReady(), 2, 'a bundle filled while 2 was held');
  t.equal(h.bundleReady(), undefined, 'nothing held: nothing to answer');
  t.same(h.request(3, 6, false), []);
  t.same(h.request(4, 7, true), [3], 'the held one takes the full bundle; 4 is held (the caller asks bundleReady again)');
  t.equal(h.held, 4);
  t.equal(h.close(), 4, 'the session ends: the held one is answered');
});

t.test('longpoll hold - messages short of a bundle wait lingerMs, counted from when they came', async (t) => {
  const h = new HoldPolicy<number>({ holdMs: 25_000, lingerMs: 20 });
  h.request(1, 0, false);
  t.equal(h.messagesWaiting(100), undefined, 'just came');
  t.equal(h.deadlineMs(), 120);
  t.equal(h.tick(119), undefined);
  t.equal(h.tick(120), 1, 'waited lingerMs');
  t.equal(h.messagesWaiting(130), undefined, 'nothing held');
  t.same(h.request(2, 200, false), [2], 'a request arriving after they waited lingerMs is answered at once');
  refuses(t, () => new HoldPolicy({ holdMs: 0 }), ErrorCode.CONFIG_INVALID, 'holdMs 0');
  refuses(t, () => new HoldPolicy({ holdMs: 10, lingerMs: 11 }), ErrorCode.CONFIG_INVALID, 'lingerMs above holdMs');
});

t.test('longpoll hold - request order: next, after a gap, duplicate, stale', async (t) => {
  t.equal(requestOrder(4, 5), RequestOrder.NEXT);
  t.equal(requestOrder(4, 9), RequestOrder.AFTER_GAP);
  t.equal(requestOrder(4, 4), RequestOrder.DUPLICATE);
  t.equal(requestOrder(4, 2), RequestOrder.STALE);
  t.equal(checkRequestOrder(0, 1), RequestOrder.NEXT);
  refuses(t, () => checkRequestOrder(4, 4), ErrorCode.LONGPOLL_REQUEST_STALE, 'a duplicate');
  refuses(t, () => checkRequestOrder(4, 3), ErrorCode.LONGPOLL_REQUEST_STALE, 'an older request');
});

const opts = { responseTimeoutMs: 35_000, answerTimeoutMs: 3_000, requestsUnansweredMax: 3, requestsOutstandingMax: 2, lingerMs: 20 };
const idle = { sendableMessages: 0, fullBundle: false };

t.test('longpoll request policy - keeps one request waiting; a response with none left sends the next', async (t) => {
  const p = new RequestPolicy(opts);
  t.same(p.decide(0, idle), { action: 'send', resend: false }, 'at the start');
  p.sent(1, 0);
  t.same(p.decide(1, idle), { action: 'wait', wakeAtMs: 35_000 }, 'one waiting at the gateway: nothing to do');
  p.responded(1);
  t.same(p.decide(25_000, idle), { action: 'send', resend: false }, 'its response came: send the next');
});

t.test('longpoll request policy - a full bundle sends at once, short of one after lingerMs, never past requestsOutstandingMax', async (t) => {
  const p = new RequestPolicy(opts);
  p.sent(1, 0);
  t.same(p.decide(10, { sendableMessages: 256, fullBundle: true }), { action: 'send', resend: false });
  p.sent(2, 10);
  t.same(p.decide(11, { sendableMessages: 256, fullBundle: true }), { action: 'wait', wakeAtMs: 3_010 }, 'two outstanding: wait, for the answer time-out');
  p.responded(1);
  t.same(p.decide(50, { sendableMessages: 1, fullBundle: false }), { action: 'send', resend: false }, 'room again, and what waits has waited since 11');
  p.sent(3, 50);
  t.same(p.decide(60, { sendableMessages: 1, fullBundle: false }), { action: 'wait', wakeAtMs: 3_050 }, 'two outstanding: no room');
  p.responded(2);
  t.same(p.decide(61, { sendableMessages: 1, fullBundle: false }), { action: 'wait', wakeAtMs: 70 }, 'one message, waiting since 60, the last request at 50: the next at 70');
  t.same(p.decide(70, { sendableMessages: 2, fullBundle: false }), { action: 'send', resend: false }, 'lingerMs after the last request');
});

t.test('longpoll request policy - after a quiet spell a lone message goes at once; under load one request per lingerMs', async (t) => {
  const p = new RequestPolicy(opts);
  p.sent(1, 0);
  t.same(p.decide(5_000, { sendableMessages: 1, fullBundle: false }), { action: 'send', resend: false }, 'no request for 5 s: the message goes now');
  p.sent(2, 5_000);
  p.responded(1);
  t.same(p.decide(5_001, { sendableMessages: 1, fullBundle: false }), { action: 'wait', wakeAtMs: 5_020 }, 'one went 1 ms ago: this one waits for lingerMs after it');
  t.same(p.decide(5_020, { sendableMessages: 3, fullBundle: false }), { action: 'send', resend: false });
});

t.test('longpoll request policy - time-outs resend; N in a row without a response declare the connection failed', async (t) => {
  const p = new RequestPolicy(opts);
  p.sent(1, 0);
  t.same(p.decide(34_999, idle).action, 'wait');
  t.same(p.decide(35_000, idle), { action: 'send', resend: true }, 'no response in responseTimeoutMs');
  p.sent(2, 35_000);
  t.same(p.decide(70_000, idle), { action: 'send', resend: true });
  p.sent(3, 70_000);
  const d = p.decide(105_000, idle);
  t.equal(d.action, 'failed', 'three in a row unanswered');
  if (d.action === 'failed') t.equal(d.error.code, ErrorCode.LONGPOLL_CONNECTION_FAILED);
  t.equal(p.decide(105_001, idle).action, 'failed', 'and stays failed');
  const q = new RequestPolicy(opts);
  q.sent(1, 0); q.sent(2, 10);
  t.same(q.decide(3_010, idle), { action: 'send', resend: true }, 'two outstanding and no answer in answerTimeoutMs: one was lost');
  q.sent(3, 3_010);
  q.responded(1);
  t.same(q.decide(3_020, idle).action, 'wait', 'a late response resets the count');
  refuses(t, () => new RequestPolicy({ requestsUnansweredMax: 0 }), ErrorCode.CONFIG_INVALID, 'requestsUnansweredMax 0');
});

t.test('longpoll request policy - a request that failed fast is no longer outstanding and counts toward N in a row', async (t) => {
  const p = new RequestPolicy(opts);
  p.sent(1, 0);
  p.failed(1);
  t.same(p.decide(1, idle), { action: 'send', resend: false }, 'none outstanding: the next goes (the caller paces it)');
  p.sent(2, 1);
  p.responded(2);
  p.sent(3, 2);
  p.failed(3);
  p.sent(4, 3);
  p.failed(4);
  t.equal(p.decide(4, idle).action, 'send', 'two in a row failed: not yet');
  p.sent(5, 4);
  p.failed(5);
  const d = p.decide(5, idle);
  t.equal(d.action, 'failed', 'three in a row failed');
  if (d.action === 'failed') t.equal(d.error.code, ErrorCode.LONGPOLL_CONNECTION_FAILED);
  const q = new RequestPolicy(opts);
  q.sent(1, 0);
  q.responded(1);
  q.failed(1);
  t.equal(q.outstandingRequests, 0, 'a settled request failing later changes nothing');
  t.equal(q.decide(1, idle).action, 'send');
});
