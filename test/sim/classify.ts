/**
 * Which known bug a failing seed most likely shows, from the checker's message (the names are
 * issue 9's cases). A heuristic for campaign summaries and for the regression list; the trace of
 * a replay is what proves it.
 */
import type { RunResult } from './world.js';

export const bugClasses = {
  'case-1-file': 'case 1: short write counted as whole (file handler line damaged)',
  'case-1-store': 'case 1: short write counted as whole (store: seq handed out again / record cut)',
  'case-2': 'case 2: file handler skips a packet another target overtook',
  'case-3': 'case 3: wiped store acked by the numbers of its earlier life',
  'case-4': 'case 4: phantom seq after an interrupted roll wedges ackedSeq',
  'case-5': 'case 5: failed roll blocks every later append',
  'case-6': 'case 6: retries in place come back in reverse order',
  'case-12': 'case 12: lane stalls after an early retry timer',
  'new-file-dir': 'new: a new file or directory entry is never synced (file handler output, dispatch log, a recreated store directory)',
  'two-sessions': 'new: two sessions of one agent hand a one-at-a-time target two packets at once (the replaced session still dispatches)',
  'flip-cuts-tail': 'new: a bit flipped while reading at recovery makes a durable record look torn: it is cut and its seq handed out again',
  'pipelined-overtake': 'new: with a pipelining handler, a short retry in place (or a hand-over that waited less) overtook an earlier packet of the target',
  'renumber-empty': 'new: renumbering a store with nothing to renumber started its next segment under the same name; the next removal unlinked the live segment',
  'seen-unrecorded': 'new: a wiped store reused a seq a handler had been handed but the dispatch log never recorded',
  'told-before-durable': 'new: a refused append\'s seq was told done to the gateway (PING), then handed out again after a power cut and acked unsent',
  'failed-handover-passed': 'new: a packet that failed before reaching the handler was passed by the next one of its target',
  'flip-cuts-dispatch-log': 'new: a bit flipped while the dispatch log was read at open cut every record after it',
  'fake-gateway-trusted': 'issue 10 case 2: the agent acked, or renumbered, stored packets on the word of a fake gateway naming seqs it never issued',
  'unconfirmed-not-fresh': 'issue 10 case 2: a wiped store killed after its first append, recovered without an ack state, was not fresh and refused every honest WELCOME for good',
  'unacked-past-gap': 'issue 11: after a power cut the file handler kept and learnt a line it never acknowledged that survived past zeroed (unwritten) sectors; the earlier line lost there was written after it',
  'sim-fake-below-record': 'simulator: the fake gateway renumbered a fresh store below the seqs the real gateway knew of its earlier life (a case docs/guarantees.md does not promise); the agent then refused the real gateway for good',
  'flip-unlearnt-line': 'issue 11: a bit flipped while the file handler read its output at recovery made an acknowledged line unreadable (or another seq): not learnt, its resend was written twice',
  'down-unrecorded-stuck': 'issue 12: an answer that could not be recorded (the gateway\'s settle, or the agent\'s answered log) left its message unsettled for good in a session that lived on, and the messages behind it waiting',
  'down-handed-twice': 'issue 12: a message reached its consumer twice with no crash in its window: the gateway freed room for an answer it had not recorded (the agent answered past its answered log), or the agent left a verdict it could not record unanswered and the message came back',
  'down-requeued-finished': 'issue 12: a message its consumer took (its DOWN_ACK lost with the session) was queued again and then expired or dropped at the gateway: the application is told it never reached the device',
  'down-sent-unrecorded': 'issue 12: a DOWN frame went before its messages were durably recorded as sent (records.ts o); after a gateway crash, one its agent had answered ok was expired at the gateway',
  'down-sent-never-retried': 'issue 12: sent records kept from a failed write were retried only with the next write; with a full queue none came and a DOWN frame waited for ever',
  'down-answered-flip': 'issue 12: a bit flipped on read at the answered log\'s recovery cut a durable verdict, and a repeat reached its consumer twice',
  'flip-seqs-marks': 'issue 12 campaign (uplink): a bit flipped while the rotating file handler read .NAME.seqs at open made it believe seqs were written: answered ok unwritten',
  unknown: 'not classified',
} as const;
export type BugClass = keyof typeof bugClasses;

export function classify(r: RunResult): BugClass | null {
  const v = r.violation;
  if (!v) return null;
  const m = v.message;
  // The gateway answered ok unwritten after a read of its marks flipped a bit (not the agent trusting a fake).
  if (v.checker === 'lost' && m.includes('the file handler answered ok') && r.faults.includes('bit-flips')) return 'flip-seqs-marks';
  // Only a fake gateway names seqs an agent never issued: a loss or a duplicate with one in the run is that.
  if ((v.checker === 'lost' || v.checker === 'exactly-once') && r.faults.includes('fake-gateway')) return 'fake-gateway-trusted';
  switch (v.checker) {
    case 'handler-inflight':
      return 'two-sessions';
    case 'durable':
      return 'new-file-dir';
    case 'seq-unique':
      if (m.includes('the whole store was gone')) return 'new-file-dir';
      if (/ 0 short writes, 0 ENOSPC, [1-9]/.test(m)) return 'flip-cuts-tail';
      return 'case-1-store';
    case 'order':
      if (m.includes('survived a power cut of the gateway unacknowledged')) return 'unacked-past-gap';
      return 'case-6';
    case 'lost':
      if (m.includes('its line in the output is damaged')) return 'case-1-file';
      if (m.includes('the file handler answered ok')) return 'case-2';
      if (m.includes('after a wipe')) return 'case-3';
      if (m.includes('on a disk that flipped no bit')) return 'case-1-store';
      return 'unknown';
    case 'down-duplicate':
      if (m.includes('the answered log lost it')) return 'down-answered-flip';
      return 'down-handed-twice';
    case 'down-state':
      // down-requeued-finished is fixed (the queue's sent rule); what remains is a sent mark lost.
      if (/ is (expired|dropped) /.test(m)) return 'down-sent-unrecorded';
      return 'unknown';
    case 'liveness':
      if (/downlink: .*[1-9]\d* unsettled/.test(m)) return 'down-unrecorded-stuck';
      if (m.includes('probe refused')) return 'case-5';
      if (m.includes('phantom')) return 'case-4';
      if (m.includes('stuck in the gateway')) return 'case-12';
      return 'unknown';
    default:
      return 'unknown';
  }
}
