/**
 * A downlink subscriber on the agent's local socket, speaking the framing docs/downlink.md
 * documents (newline-delimited JSON): `{"op":"subscribe","target":PATTERN}`, then pushed
 * `{"message":{...}}` lines, each answered `{"op":"ack","id"}` or `{"op":"refuse","id","reason"}`.
 * `hold` keeps messages unanswered until the test answers them itself.
 */
import { createConnection, type Socket } from 'node:net';

export interface Received {
  id: string;
  target: string;
  data: unknown;
  ts: number;
}

export interface Subscriber {
  /** every message pushed to this subscriber, in order (repeats included) */
  readonly received: Received[];
  ack(id: string): void;
  refuse(id: string, reason: string): void;
  close(): void;
  readonly closed: Promise<void>;
}

export async function subscribe(socketPath: string, target: string, opts: { hold?: boolean } = {}): Promise<Subscriber> {
  const sock: Socket = createConnection(socketPath);
  const received: Received[] = [];
  let buf = '';
  let subscribed!: (err?: Error) => void;
  const ready = new Promise<void>((resolve, reject) => (subscribed = (err) => (err ? reject(err) : resolve())));
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  const write = (o: unknown): void => void sock.write(`${JSON.stringify(o)}\n`);
  sock.on('error', (err) => subscribed(err));
  sock.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const o = JSON.parse(line) as { ok?: boolean; message?: Received | string; code?: string };
      // A refusal carries a `message` string too: a pushed message is the line without `ok`.
      if (o.message && !('ok' in o)) {
        const m = o.message as Received;
        received.push(m);
        if (!opts.hold) write({ op: 'ack', id: m.id });
      } else if (o.ok === true) {
        subscribed();
      } else if (o.ok === false) {
        subscribed(new Error(`subscribe refused: ${line}`));
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  write({ op: 'subscribe', target });
  await ready;
  return {
    received,
    ack: (id) => write({ op: 'ack', id }),
    refuse: (id, reason) => write({ op: 'refuse', id, reason }),
    close: () => sock.destroy(),
    closed,
  };
}
