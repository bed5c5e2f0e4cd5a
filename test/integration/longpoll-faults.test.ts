/**
 * HTTP long-poll under a seeded fault proxy (issue 11, lost exchanges): the proxy sits in front of
 * the gateway's long-poll port, and every keep-alive connection of the agent's HTTP client gets a
 * fault, so requests and responses are cut (often mid-body), stalled or black-holed, for
 * HTTP_ROUNDS rounds (default 80) while a producer keeps packets for several targets in flight.
 * Every packet the agent accepted reaches the file exactly once, in seq order per target, and the
 * agent gives up a black-holed socket within its own bounds. SEED= replays a run.
 */
import t from 'tap';
import { faultRun } from '../helpers/fault-run.js';

const httpRounds = Number(process.env.HTTP_ROUNDS ?? 80);

t.test(`faults - ${httpRounds} rounds of cut, stalled and black-holed HTTP long-poll connections (lost and cut requests and responses): every packet once, in order per target`, (t) => faultRun(t, 'http', httpRounds));
