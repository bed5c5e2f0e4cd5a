/**
 * The tunnel under a seeded fault proxy: real agent and gateway processes, with every connection
 * between them cut (FIN or RST, often mid-frame), stalled one or both ways, or black-holed (only
 * the peers' ping time-outs can notice), for ROUNDS rounds (default 200) while a producer keeps
 * packets for several targets in flight. Afterwards every packet the agent accepted must have
 * reached the file exactly once, in seq order per target. SEED= replays a run. The same over HTTP
 * long-poll: longpoll-faults.test.ts.
 */
import t from 'tap';
import { faultRun } from '../helpers/fault-run.js';

const rounds = Number(process.env.ROUNDS ?? 200);

t.test(`faults - ${rounds} rounds of cut, stalled and black-holed TCP tunnel connections: every packet once, in order per target`, (t) => faultRun(t, 'tcp', rounds));
