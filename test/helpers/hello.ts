import type t from 'tap';
import { tcpDialer, type DialerTls } from '../../agent/link/tcp.js';
import { FrameType, protocolVersion, type Frame } from '../../protocol/frames.js';
import type { Transport } from '../../protocol/transport.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/**
 * Dials a gateway as an agent would, says HELLO, and resolves with its first answer (WELCOME or
 * BYE; null if it closed without one). The transport stays open (closed at teardown) and `frames`
 * keeps collecting what the gateway sends.
 */
export async function sayHello(t: Test, url: string, h: { agent: string; token?: string; ackedSeq?: number; downMessagesMax?: number; downBytesMax?: number }, tls?: DialerTls): Promise<{ first: Frame | null; tr: Transport; frames: Frame[] }> {
  const tr = await tcpDialer(url, { connectTimeoutMs: 3000, ...(tls ? { tls } : {}) })();
  t.teardown(() => tr.close());
  const frames: Frame[] = [];
  const first = new Promise<Frame | null>((resolve) => {
    tr.onFrame((f) => {
      frames.push(f);
      resolve(f);
    });
    void tr.closed.then(() => resolve(null));
  });
  tr.send({ t: FrameType.HELLO, version: protocolVersion, agent: h.agent, ackedSeq: h.ackedSeq ?? 0, ...(h.token !== undefined ? { token: h.token } : {}),
    ...(h.downMessagesMax !== undefined ? { downMessagesMax: h.downMessagesMax, downBytesMax: h.downBytesMax ?? 65536 } : {}),
  });
  return { first: await first, tr, frames };
}
