/**
 * Found in review (issue 11): gatewayChoice judged a URL only by its dial. A preferred TCP URL
 * that connects but never carries a session (a middlebox that passes the TCP handshake and then
 * drops or resets the stream, a port forwarded to something that is not the gateway) is dialed
 * again after every failed session, forever: the long-poll URL that works is never tried. A probe
 * that connects to such a URL also ends a working long-poll session (TRANSPORT_SWITCH), and then
 * the agent never comes back. The test drives the choice as the Link does: dial, the session
 * ends (here: closed without any frame from the gateway, as after a HELLO time-out), dial again.
 * Now a URL whose sessions close before their WELCOME twice in a row is passed over (dialed last,
 * not probed) for probeIntervalMs.
 */
import t from 'tap';
import { gatewayChoice } from '../../agent/link/gateway-choice.js';
import { createLog } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import { FrameType, type Frame } from '../../protocol/frames.js';
import type { Transport } from '../../protocol/transport.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { turn } from '../helpers/wait.js';
import { FakeClock } from './fixtures/fake-clock.js';

const welcome: Frame = { t: FrameType.WELCOME, session: 's', dispatchedSeq: 0, creditPackets: 16, creditBytes: 16_384 };

t.test('review - a preferred URL that connects but never carries a session is passed over for the working fallback, and tried again later', async (t) => {
  const clock = new FakeClock();
  const dials = [0, 0];
  const dialer = (i: number) => (): Promise<Transport> => {
    dials[i]!++;
    return Promise.resolve(new MemoryTransport());
  };
  const choice = gatewayChoice([{ url: 'tcp://gw:7800', dial: dialer(0) }, { url: 'http://gw:7080', dial: dialer(1) }], {
    clock, log: createLog({ write: () => undefined }), fallbackAfterMs: 10_000, probeIntervalMs: 300_000,
  });
  t.teardown(() => choice.stop());
  const used: string[] = [];
  for (let session = 0; session < 20; session++) {
    const tr = (await choice()) as MemoryTransport;
    used.push(choice.currentUrl()!);
    // The long-poll URL works (its gateway WELCOMEs); the preferred one connects and nothing comes back.
    if (choice.currentUrl() === 'http://gw:7080') tr.deliver(welcome);
    clock.advance(10_000);
    tr.close(new FerryError(ErrorCode.PEER_TIMEOUT, 'the session ended'));
    for (let i = 0; i < 4; i++) await turn();
  }
  t.same(used.slice(0, 3), ['tcp://gw:7800', 'tcp://gw:7800', 'http://gw:7080'], 'two sessions that never opened on the preferred URL, then the fallback');
  t.ok(dials[1]! >= 10, `the working long-poll URL carried most sessions (${dials[1]} of 20)`);
  // 20 sessions of 10 s: the pass-over (300 s) is not over yet, so the preferred URL was not dialed again.
  t.equal(dials[0], 2, 'the passed-over URL is not dialed again before probeIntervalMs');
  clock.advance(300_000);
  await choice();
  t.equal(choice.currentUrl(), 'tcp://gw:7800', 'once probeIntervalMs has passed it is tried again first');
});
