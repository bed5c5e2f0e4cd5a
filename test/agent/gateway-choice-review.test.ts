/**
 * Review reproduction (issue 11): gatewayChoice judges a URL only by its dial. A preferred TCP URL
 * that connects but never carries a session (a middlebox that passes the TCP handshake and then
 * drops or resets the stream, a port forwarded to something that is not the gateway) is dialed
 * again after every failed session, forever: the long-poll URL that works is never tried. A probe
 * that connects to such a URL also ends a working long-poll session (TRANSPORT_SWITCH), and then
 * the agent never comes back. The test drives the choice as the Link does: dial, the session
 * ends (here: closed without any frame from the gateway, as after a HELLO time-out), dial again.
 */
import t from 'tap';
import { gatewayChoice } from '../../agent/link/gateway-choice.js';
import { createLog } from '../../common/log.js';
import { ErrorCode, FerryError } from '../../protocol/errors.js';
import type { Transport } from '../../protocol/transport.js';
import { MemoryTransport } from '../helpers/memory-transport.js';
import { turn } from '../helpers/wait.js';
import { FakeClock } from './fixtures/fake-clock.js';

t.test('review - a preferred URL that connects but never carries a session: the working fallback is never used', async (t) => {
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
  for (let session = 0; session < 20; session++) {
    const tr = await choice();
    // The Link sends HELLO; nothing comes back; its HELLO time-out ends the session.
    clock.advance(10_000);
    tr.close(new FerryError(ErrorCode.PEER_TIMEOUT, 'no WELCOME in time'));
    for (let i = 0; i < 4; i++) await turn();
  }
  t.equal(dials[0], 20, 'the preferred URL was dialed for each of the 20 sessions, none of which opened');
  t.ok(dials[1]! > 0, 'the long-poll URL is tried after sessions on the preferred one keep failing without a frame');
});
