/**
 * The tunnel under a seeded fault proxy: real agent and gateway processes, with every connection
 * between them cut (FIN or RST, often mid-frame), stalled one or both ways, or black-holed (only
 * the peers' ping time-outs can notice), for ROUNDS rounds (default 120) while a producer keeps
 * packets for several targets in flight. Afterwards every packet the agent accepted must have
 * reached the file exactly once, in seq order per target. SEED= replays a run. The same over HTTP
 * long-poll: longpoll-faults.test.ts.
 */
import t from 'tap';
import { faultRun } from '../helpers/fault-run.js';

// 120 per run (was 200): each run draws a new seed, and the suite must stay within its 15 minutes.
const rounds = Number(process.env.ROUNDS ?? 120);

t.test(`faults - ${rounds} rounds of cut, stalled and black-holed TCP tunnel connections: every packet once, in order per target`, (t) => faultRun(t, 'tcp', rounds));
