/**
 * What the simulator found in code that still has the bugs, and how CI runs it until they are
 * fixed. Whoever fixes a bug flips its `fixed` to true:
 * - its regression seeds must then pass (sim.test.ts asserts it; until then it asserts that
 *   they still fail, with the same class of failure);
 * - the fault kinds (and the workaround) it needs left out of CI's seed run come back in, unless
 *   another unfixed bug still needs them out.
 * The seeds replay with `npm run sim -- --from SEED --seeds 1 --verbose --faults ...` plus the
 * options shown (`--precreate`, `--disk-faults-on`). See FINDINGS.md for what each one showed.
 */
import type { BugClass } from './classify.js';
import { faultKinds, type FaultKind } from './faults.js';
import type { DiskFaultsOn } from './context.js';
import type { RunOptions } from './world.js';

export interface KnownBug {
  fixed: boolean;
  /** fault kinds whose seeds find this bug so often that CI's seed run leaves them out until it is fixed */
  ciWithout: FaultKind[];
  /** CI leaves this checker out until it is fixed */
  ciSkipsChecker?: string;
  /** CI creates the gateway's files at install (hiding the unsynced new directory entry) until this is fixed */
  ciPrecreatesFiles?: boolean;
}

export const knownBugs: Record<Exclude<BugClass, 'unknown'>, KnownBug> = {
  'case-1-file': { fixed: true, ciWithout: ['short-writes', 'disk-full'] },
  'case-1-store': { fixed: true, ciWithout: ['short-writes', 'disk-full'] },
  'case-2': { fixed: true, ciWithout: ['disk-full', 'disk-eio', 'gateway-crash-mid-io'] },
  'case-3': { fixed: true, ciWithout: ['agent-wipe'] },
  'case-4': { fixed: true, ciWithout: ['agent-crash-mid-io'] },
  'case-5': { fixed: true, ciWithout: ['disk-eio', 'disk-full'] },
  'case-6': { fixed: true, ciWithout: ['downstream-fail', 'disk-eio', 'disk-full'] },
  'case-12': { fixed: true, ciWithout: ['downstream-fail', 'disk-eio', 'disk-full'] },
  'new-file-dir': { fixed: true, ciWithout: ['agent-wipe', 'gateway-crash-mid-io'], ciPrecreatesFiles: true },
  'two-sessions': { fixed: true, ciWithout: [], ciSkipsChecker: 'handler-inflight' },
  'flip-cuts-tail': { fixed: true, ciWithout: ['bit-flips'] },
  // Found after the fixes of cases 1-6 and 12, by runs with every fault kind; fixed at once.
  'pipelined-overtake': { fixed: true, ciWithout: [] },
  'renumber-empty': { fixed: true, ciWithout: [] },
  'seen-unrecorded': { fixed: true, ciWithout: [] },
  'told-before-durable': { fixed: true, ciWithout: [] },
  'failed-handover-passed': { fixed: true, ciWithout: [] },
  'flip-cuts-dispatch-log': { fixed: true, ciWithout: [] },
  // Issue 10: found by the fault kinds fake-gateway and hostile-agent on the code before its fix.
  'fake-gateway-trusted': { fixed: true, ciWithout: ['fake-gateway'] },
  'unconfirmed-not-fresh': { fixed: true, ciWithout: ['agent-wipe'] },
  // A fault of the simulator's fake gateway, not of ferry: found by CI's seed run on 71dad28.
  'sim-fake-below-record': { fixed: true, ciWithout: ['fake-gateway'] },
  // Issue 11: found with the long-poll carrier on (it only changed the timing); fixed at once.
  'unacked-past-gap': { fixed: true, ciWithout: ['gateway-power', 'gateway-crash-mid-io'] },
  // Found by CI's seed run on 1dffcdb: the bit-flips fault at the gateway during the file handler's recovery.
  'flip-unlearnt-line': { fixed: true, ciWithout: ['bit-flips'] },
  // Issue 12: found by the first runs with the downlink on; the first two fixed at once (sender.ts, inbox.ts).
  'down-unrecorded-stuck': { fixed: true, ciWithout: [] },
  'down-handed-twice': { fixed: true, ciWithout: [] },
  // Fixed: a message sent once is ended only by its agent's verdict, never expired nor dropped at the gateway (store.ts).
  'down-requeued-finished': { fixed: true, ciWithout: [] },
  // Found by the first full CI seed runs after that fix: a DOWN frame went before its messages were recorded as sent.
  'down-sent-unrecorded': { fixed: true, ciWithout: [] },
  // A bit flipped on read at the answered log's recovery cut a durable verdict as a torn tail.
  'down-answered-flip': { fixed: true, ciWithout: [] },
  // Found by the downlink campaign (uplink, gateway/handlers/file-rotation.ts readOlderMarks): `.NAME.seqs` was read once; fixed: read until two reads agree.
  'flip-seqs-marks': { fixed: true, ciWithout: ['bit-flips'] },
  // CI on 0a13c8c: the queue's sent records failed on a full disk and were retried only with the next write, which never came.
  'down-sent-never-retried': { fixed: true, ciWithout: [] },
};

export interface Regression {
  seed: number;
  /** found with agents on HTTP long-poll too (RunOptions.longpoll); absent: every agent on TCP */
  longpoll?: boolean;
  /** found with the downlink on (RunOptions.downlink); absent: no downlink, as before issue 12 */
  downlink?: boolean;
  bug: Exclude<BugClass, 'unknown'>;
  faults: FaultKind[];
  precreateFiles?: boolean;
  diskFaultsOn?: DiskFaultsOn;
  /** what the checker said when it was found */
  found: string;
}

/** Every fault kind there was after issue 10, before issue 11's (a seed replays only with the same list). */
const faultsAtIssue10: FaultKind[] = [
  'agent-kill', 'agent-power', 'agent-crash-mid-io', 'agent-wipe', 'gateway-kill', 'gateway-power', 'gateway-crash-mid-io',
  'disk-full', 'disk-eio', 'short-writes', 'bit-flips',
  'net-cut', 'net-stall', 'net-black-hole', 'net-delay', 'net-half-open', 'net-partition',
  'downstream-fail', 'downstream-slow', 'fake-gateway', 'hostile-agent',
];

/** Every fault kind there was during issue 11, with the long-poll carrier's (a seed replays only with the same list). */
const faultsAtIssue11: FaultKind[] = [
  'agent-kill', 'agent-power', 'agent-crash-mid-io', 'agent-wipe', 'gateway-kill', 'gateway-power', 'gateway-crash-mid-io',
  'disk-full', 'disk-eio', 'short-writes', 'bit-flips',
  'net-cut', 'net-stall', 'net-black-hole', 'net-delay', 'net-half-open', 'net-partition',
  'downstream-fail', 'downstream-slow', 'fake-gateway', 'hostile-agent',
  'http-loss', 'http-dup', 'http-garble', 'proxy-cut', 'tcp-blocked',
];

/** Every fault kind there was during issue 12, with the downlink's (a seed replays only with the same list). */
const faultsAtIssue12: FaultKind[] = [
  'agent-kill', 'agent-power', 'agent-crash-mid-io', 'agent-wipe', 'gateway-kill', 'gateway-power', 'gateway-crash-mid-io',
  'disk-full', 'disk-eio', 'short-writes', 'bit-flips',
  'net-cut', 'net-stall', 'net-black-hole', 'net-delay', 'net-half-open', 'net-partition',
  'downstream-fail', 'downstream-slow', 'fake-gateway', 'hostile-agent',
  'http-loss', 'http-dup', 'http-garble', 'proxy-cut', 'tcp-blocked',
  'down-ack-loss', 'consumer-hang', 'consumer-crash', 'downlink-burst',
];

/** Every fault kind there was when the campaign ran, before issue 10's (a seed replays only with the same list). */
const allFaultsWhenFound: FaultKind[] = [
  'agent-kill', 'agent-power', 'agent-crash-mid-io', 'agent-wipe', 'gateway-kill', 'gateway-power', 'gateway-crash-mid-io',
  'disk-full', 'disk-eio', 'short-writes', 'bit-flips',
  'net-cut', 'net-stall', 'net-black-hole', 'net-delay', 'net-half-open', 'net-partition',
  'downstream-fail', 'downstream-slow',
];

/** The fault kinds CI ran when the first 1,000-seed run found two more bugs. */
const ciFaultsWhenFound: FaultKind[] = ['agent-kill', 'agent-power', 'gateway-kill', 'gateway-power', 'bit-flips', 'net-cut', 'net-stall', 'net-black-hole', 'net-delay', 'net-half-open', 'net-partition', 'downstream-slow'];

export const regressions: Regression[] = [
  { seed: 5000, bug: 'case-1-file', faults: ['short-writes'], precreateFiles: true, found: 'lost: a line the file handler answered ok for is damaged in its output' },
  { seed: 6041, bug: 'case-1-store', faults: ['short-writes', 'agent-kill', 'agent-power'], precreateFiles: true, diskFaultsOn: 'agents', found: 'seq-unique: seq 32 handed out twice; the store reopened with lastSeq 31 after cutting a torn tail of 15 bytes' },
  { seed: 1229, bug: 'case-1-store', faults: allFaultsWhenFound, precreateFiles: true, found: 'seq-unique: seq 145 handed out twice after a full disk; torn tail of 101 bytes cut' },
  { seed: 5006, bug: 'case-2', faults: ['disk-eio'], precreateFiles: true, found: 'lost: the file handler answered ok for a packet that is not in its output' },
  { seed: 5008, bug: 'case-2', faults: ['disk-full'], precreateFiles: true, found: 'lost: a packet failed on a full disk, a later one of another target was written, its resend was answered ok unwritten' },
  { seed: 5001, bug: 'case-3', faults: ['agent-wipe'], precreateFiles: true, found: 'lost: packets appended to the new store after a wipe (seqs 1..n) never delivered' },
  { seed: 5004, bug: 'case-4', faults: ['agent-crash-mid-io'], precreateFiles: true, found: 'liveness: ackedSeq stays below lastSeq with nothing in flight (a phantom seq)' },
  { seed: 2076, bug: 'case-4', faults: ['agent-crash-mid-io'], precreateFiles: true, found: 'liveness: store reopened with lastSeq 116, ackedSeq 115 forever' },
  { seed: 5017, bug: 'case-5', faults: ['disk-eio'], precreateFiles: true, found: 'liveness: probe refused with STORE_IO forever after an open failed in a roll' },
  { seed: 5002, bug: 'case-5', faults: ['disk-full'], precreateFiles: true, found: 'liveness: probe refused with STORE_IO forever after a roll failed on a full disk' },
  { seed: 5002, bug: 'case-6', faults: ['downstream-fail'], precreateFiles: true, found: 'order: a later packet handed to the pipelined downstream before an earlier failed one was retried' },
  { seed: 5004, bug: 'case-6', faults: ['disk-eio'], precreateFiles: true, found: 'order: two packets of one target failed together at the file handler and were retried in reverse' },
  { seed: 5003, bug: 'case-12', faults: ['downstream-fail'], precreateFiles: true, found: 'liveness: packets stuck in the gateway (a lane retry timer fired early and the lane never pumped again)' },
  { seed: 3720616456, bug: 'two-sessions', faults: ciFaultsWhenFound, precreateFiles: true, found: 'handler-inflight: down/one/a got a1-29 from the new session while a1-28 was still in the handler from the replaced one' },
  { seed: 3720616473, bug: 'flip-cuts-tail', faults: ciFaultsWhenFound, precreateFiles: true, found: 'seq-unique: after a power cut, recovery read a flipped bit in the last (durable) record, cut it as a torn tail, and seq 2 was handed out again' },
  { seed: 103, bug: 'new-file-dir', faults: ['net-cut'], found: 'durable: acked lines of the file handler are in the page cache only (the new file was never dir-synced)' },
  { seed: 1256, bug: 'pipelined-overtake', faults: allFaultsWhenFound, found: 'order: a2-45 failed (retry 1500, back to the agent), then a2-51 failed (retry 100) and was retried in place before it' },
  { seed: 1343, bug: 'pipelined-overtake', faults: allFaultsWhenFound, found: 'order: a1-56 went back to the agent while a1-62 waited in the lane, and the lane handed 62 over' },
  { seed: 2568150713, bug: 'pipelined-overtake', faults: allFaultsWhenFound, found: 'order: after a session change, a2-24 and a2-22 waited for the old session in the same lane and 24 woke first' },
  { seed: 1217, bug: 'renumber-empty', faults: allFaultsWhenFound, found: 'lost: 18 packets appended after a wipe, whose segment file was unlinked by the removal of the empty renumbered one' },
  { seed: 1239, bug: 'seen-unrecorded', faults: allFaultsWhenFound, found: 'lost: a1-38 reused seq 17, which the file handler had written for the old store but the dispatch log never recorded' },
  { seed: 2568150492, bug: 'told-before-durable', faults: allFaultsWhenFound, found: 'lost: a refused append\'s seq 13 was PINGed as done, a power cut handed it out again, WELCOME acked the new packet unsent' },
  { seed: 103404, bug: 'failed-handover-passed', faults: allFaultsWhenFound, found: 'order: a2-1 failed before reaching the file handler (its handed-over mark could not be written) and a2-2 went past it' },
  { seed: 102960, bug: 'flip-cuts-dispatch-log', faults: allFaultsWhenFound, found: 'lost: a bit flipped while the restarted gateway read its dispatch log cut the records after it, the handed-over mark among them; a wiped store reused seq 4102' },
  { seed: 1074, bug: 'new-file-dir', faults: allFaultsWhenFound, precreateFiles: true, found: 'seq-unique: after a wipe the store directory was recreated unsynced; a power cut took the whole store' },
  { seed: 1033, bug: 'fake-gateway-trusted', faults: ['fake-gateway', 'hostile-agent'], found: 'lost: 19 resolved appends of a1 (a1-11 on) never delivered: the old link applied the seqs of a fake gateway\'s WELCOME or ACK to its store' },
  { seed: 1037, bug: 'fake-gateway-trusted', faults: ['fake-gateway', 'hostile-agent'], found: 'lost: a1-1..7 never delivered: the old link applied the seqs of a fake gateway\'s WELCOME or ACK to its store' },
  { seed: 1018, bug: 'fake-gateway-trusted', faults: ['fake-gateway', 'hostile-agent'], found: 'exactly-once: a store that was not fresh renumbered above a fake WELCOME\'s seq; a1-20, already dispatched under its old seq, went again under seq 303792' },
  { seed: 991012597, bug: 'unconfirmed-not-fresh', faults: faultsAtIssue10, found: 'liveness: a wiped store killed after its first append recovered without an ack state, counted as not fresh, and refused every honest WELCOME (GATEWAY_PROTOCOL_VIOLATION) for good' },
  { seed: 3765432253, bug: 'sim-fake-below-record', faults: faultsAtIssue10, found: 'liveness: a fake renumbered a fresh store to seqRenumberTopMax, a wipe, a fake renumbered the new store to 440708, below the earlier life\'s 2^51+; the real gateway was refused for good (GATEWAY_PROTOCOL_VIOLATION)' },
  { seed: 90023, longpoll: true, bug: 'unacked-past-gap', faults: faultsAtIssue11, found: 'order: a power cut before the fdatasync of a2-23, a2-25, a2-26 (rot/b) left zeros for a2-23 and a2-25 whole after them; recovery learnt a2-25 (never acknowledged), and a2-23\'s resend was written after it' },
  { seed: 2027861267, longpoll: true, bug: 'flip-unlearnt-line', faults: faultsAtIssue11, found: 'exactly-once: a1-2 (file/b) written and acknowledged, then a power cut; recovery read its line with a flipped bit, took it as foreign, and the resend wrote a1-2 again' },
  { seed: 200594, longpoll: true, bug: 'unacked-past-gap', faults: ['gateway-power', 'gateway-crash-mid-io'], found: 'order: a cut before the fdatasync of a2-15..17 (rot/a) left a2-16 whole past a hole; after the restart a2-16 was answered ok unwritten while a2-15 waited, then a2-15 was written after it' },
  { seed: 300145, longpoll: true, downlink: true, bug: 'down-unrecorded-stuck', faults: faultsAtIssue12, found: 'liveness: a1.7 delivered for good: the gateway\'s disk failed the settle of its DOWN_ACK, and the sender had freed its room already (nothing requeued it in a session that lived on)' },
  { seed: 300317, longpoll: true, downlink: true, bug: 'down-unrecorded-stuck', faults: faultsAtIssue12, found: 'liveness: a2.27 and 17 more queued for good: the agent\'s disk failed the record of a verdict, the inbox never answered it, and it held the window of a session that lived on' },
  { seed: 320013, longpoll: true, downlink: true, bug: 'down-handed-twice', faults: ['disk-eio', 'disk-full', 'gateway-kill', 'gateway-power', 'net-cut'], found: 'down-duplicate: a1.6 handed to its consumer twice: the settle of its ok failed (ENOSPC), the sender freed its room, the agent (window 2, dedupIdsMax 2) answered more and forgot it; after a gateway kill it came back as queued' },
  { seed: 300318, longpoll: true, downlink: true, bug: 'down-handed-twice', faults: faultsAtIssue12, found: 'down-duplicate: a2.52 handed to its consumer twice: the agent could not record its verdict and left it unanswered; the session ended, and the message came back to a consumer that had taken it' },
  { seed: 310018, longpoll: true, downlink: true, bug: 'down-requeued-finished', faults: faultsAtIssue12, found: 'down-state: a2.38 taken by its consumer; its DOWN_ACK lost with the session, it was queued again and expired at the next take: its state says expired' },
  { seed: 310024, longpoll: true, downlink: true, bug: 'down-requeued-finished', faults: faultsAtIssue12, found: 'down-state: a1.31 taken by its consumer and answered ok; the DOWN_ACK was lost with the session, the message queued again and dropped (drop-oldest): its state says dropped' },
  { seed: 311676, longpoll: true, downlink: true, bug: 'down-requeued-finished', faults: faultsAtIssue12, found: 'down-duplicate: a1.10 handed to its consumer twice, no crash: DOWN_ACKs lost with their connections, a1.12 (ttl 20) sent, answered and recorded by the agent, then expired at the gateway; the agent (window 4, dedupIdsMax 4) had answered five messages since a1.10 and forgot it' },
  { seed: 330039, longpoll: true, downlink: true, bug: 'down-answered-flip', faults: faultsAtIssue12, found: 'down-duplicate: a1.20 answered ok and recorded; the agent restarted while its disk flipped bits on read, the answered log took a flipped record for a torn tail and cut it, and a1.20 (sent again after gateway restarts) reached its consumer again' },
  { seed: 330760, longpoll: true, downlink: true, bug: 'down-sent-unrecorded', faults: faultsAtIssue12, found: 'down-state: a2.1 (ttl 1000) answered ok and recorded by the agent; every settle failed on the gateway\'s full disk, so did the write of its sent mark; after a gateway kill it looked never sent and expired at the take: its state says expired' },
  { seed: 444252921, longpoll: true, downlink: true, bug: 'down-sent-unrecorded', faults: faultsAtIssue12, found: 'down-state: a1.6 expired at the gateway though its consumer took it: the simulator\'s queue wrapper dropped sentRecorded, so the DOWN went before the sent record, and the gateway was killed in between' },
  { seed: 1368435707, longpoll: true, downlink: true, bug: 'down-sent-unrecorded', faults: faultsAtIssue12, found: 'down-state: a1.22 expired at the gateway though its consumer took it: the sent record was written lazily and lost in a gateway power cut' },
  { seed: 1368435623, longpoll: true, downlink: true, bug: 'down-sent-unrecorded', faults: faultsAtIssue12, found: 'down-state: a2.28 expired at the gateway after a2 lost power in the verdict window (checker: excused like a repeat)' },
  { seed: 1477655837, longpoll: true, downlink: true, bug: 'down-answered-flip', faults: faultsAtIssue12, found: 'down-duplicate: a1.15 handed twice: a bit flip on read at the answered log\'s recovery cut its durable verdict as a torn tail' },
  { seed: 4104022738, longpoll: true, downlink: true, bug: 'down-sent-never-retried', faults: faultsAtIssue12, found: 'liveness: a1.85..92 delivered for good: their sent records failed on the gateway\'s full disk, the queue was full so nothing else was written, and the DOWN frame waited for the records for ever' },
  { seed: 331164, longpoll: true, downlink: true, bug: 'flip-seqs-marks', faults: faultsAtIssue12, found: 'lost: a1-24..33 and more (rot/a, rot/b) answered ok unwritten: gw#3 started while its disk flipped bits on read, and the rotating handler read .rot.jsonl.seqs once; a flipped digit marked them written (reading it until two reads agree makes the seed pass)' },
];

/** The fault kinds and options of CI's seed run: everything, less what unfixed bugs need left out. */
export function ciRunOptions(): Pick<RunOptions, 'faults' | 'precreateFiles' | 'skipCheckers' | 'longpoll' | 'downlink'> {
  const open = Object.values(knownBugs).filter((b) => !b.fixed);
  const without = new Set(open.flatMap((b) => b.ciWithout));
  return {
    longpoll: true,
    downlink: true,
    faults: faultKinds.filter((k) => !without.has(k)),
    precreateFiles: open.some((b) => b.ciPrecreatesFiles),
    skipCheckers: open.flatMap((b) => (b.ciSkipsChecker ? [b.ciSkipsChecker] : [])),
  };
}
