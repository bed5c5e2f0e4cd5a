/**
 * A seeded TCP fault proxy for integration tests: listens on 127.0.0.1 (port 0), forwards each
 * connection to `target`, and applies one fault per connection, drawn from `rng` when it is accepted:
 * - `clean`: forwards untouched;
 * - `cut`: at the onset, destroys both sockets (FIN, or RST with `reset`); a byte onset falls
 *   inside a chunk, so the cut is often mid-frame;
 * - `stall`: at the onset, stops forwarding one or both directions for `ms` (the held bytes wait
 *   in order and the source is paused, so backpressure reaches the sender), then resumes;
 * - `blackhole`: from the onset, reads and drops everything both ways, keeps both sockets open and
 *   passes on neither an end nor a close: only the peers' own timeouts can notice. A peer that
 *   ends its side gets its own socket closed (the other peer learns nothing), so the connection
 *   is over once both peers have given up.
 * Bytes are never altered, reordered or duplicated: a fault only cuts, delays or drops until closed.
 * Each connection draws the same number of values from `rng`, whatever the mode or plan, so a
 * seed gives the same sequence of faults; `connections` lists them in accept order.
 */
import { EventEmitter } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';

export const FaultKind = { clean: 'clean', cut: 'cut', stall: 'stall', blackhole: 'blackhole' } as const;
export type FaultKind = (typeof FaultKind)[keyof typeof FaultKind];

/** `up`: client → target; `down`: target → client. */
export type Direction = 'up' | 'down';

/** When a fault takes effect: once `bytes` bytes have passed in `direction`, or `ms` after the link to the target is up. */
export type Onset = { bytes: number; direction: Direction } | { ms: number };

export type Fault =
  | { kind: 'clean' }
  | { kind: 'cut'; onset: Onset; reset: boolean }
  | { kind: 'stall'; onset: Onset; directions: Direction[]; ms: number }
  | { kind: 'blackhole'; onset: Onset };

export interface FaultOptions {
  /** relative weights of the kinds drawn for each connection; default 1 each */
  weights?: Partial<Record<FaultKind, number>>;
  /** a byte onset is uniform in [0, onsetBytesMax]; default 4096 */
  onsetBytesMax?: number;
  /** an ms onset is uniform in [0, onsetMsMax]; default 1000 */
  onsetMsMax?: number;
  /** chance that the onset counts bytes rather than ms; default 0.5 */
  onsetBytesProbability?: number;
  /** a stall lasts [stallMsMin, stallMsMax]; default 50 to 1000 */
  stallMsMin?: number;
  stallMsMax?: number;
  /** chance that a stall holds both directions rather than one; default 0.5 */
  stallBothProbability?: number;
  /** chance that a cut resets (RST) rather than closes (FIN); default 0.5 */
  cutResetProbability?: number;
}

export interface FaultProxyOptions extends FaultOptions {
  target: { host: string; port: number };
  /** numbers in [0, 1), e.g. prng(seed) from test/helpers/seed.ts */
  rng: () => number;
}

/** Values drawn from rng for each connection, whatever is chosen. */
const drawsPerConnection = 7;

/** Draws one connection's fault: always exactly `drawsPerConnection` values from rng. */
export function chooseFault(rng: () => number, o: FaultOptions = {}, kind?: FaultKind): Fault {
  const r = Array.from({ length: drawsPerConnection }, () => rng());
  const weights = { clean: 1, cut: 1, stall: 1, blackhole: 1, ...o.weights };
  const kinds = Object.values(FaultKind);
  const sum = kinds.reduce((s, k) => s + weights[k], 0);
  let pick = r[0]! * sum;
  const drawn = kinds.find((k) => (pick -= weights[k]) < 0) ?? 'clean';
  const onset: Onset = r[1]! < (o.onsetBytesProbability ?? 0.5)
    ? { bytes: Math.floor(r[2]! * ((o.onsetBytesMax ?? 4096) + 1)), direction: r[3]! < 0.5 ? 'up' : 'down' }
    : { ms: Math.floor(r[2]! * ((o.onsetMsMax ?? 1000) + 1)) };
  const [msMin, msMax] = [o.stallMsMin ?? 50, o.stallMsMax ?? 1000];
  switch (kind ?? drawn) {
    case 'clean': return { kind: 'clean' };
    case 'cut': return { kind: 'cut', onset, reset: r[4]! < (o.cutResetProbability ?? 0.5) };
    case 'stall': {
      const directions: Direction[] = r[4]! < (o.stallBothProbability ?? 0.5) ? ['up', 'down'] : [r[5]! < 0.5 ? 'up' : 'down'];
      return { kind: 'stall', onset, directions, ms: msMin + Math.floor(r[6]! * (msMax - msMin + 1)) };
    }
    case 'blackhole': return { kind: 'blackhole', onset };
  }
}

export interface ProxiedConnection {
  /** 0-based, in accept order */
  readonly index: number;
  readonly fault: Fault;
  /** `pending` until the onset, `active` once the fault took effect, `over` when a stall has ended; a clean link stays `pending` */
  readonly phase: 'pending' | 'active' | 'over';
  /** bytes written on to the other side */
  readonly forwarded: Record<Direction, number>;
  /** bytes read and dropped by a blackhole (or read after a cut) */
  readonly dropped: number;
  /** resolves once both sockets are closed */
  readonly closed: Promise<void>;
  /** resolves once the client's socket is closed (the client gave the connection up, or it was cut) */
  readonly clientClosed: Promise<void>;
  /** destroys both sockets now (a blackholed connection otherwise stays open until close()) */
  destroy(): void;
}

export interface FaultProxyStats {
  connections: number;
  open: number;
  /** faults chosen, per kind */
  chosen: Record<FaultKind, number>;
  /** faults that took effect (their onset came before the connection ended) */
  applied: Record<Exclude<FaultKind, 'clean'>, number>;
  forwarded: Record<Direction, number>;
  dropped: number;
  /** connections whose target could not be reached (the client is destroyed) */
  targetErrors: number;
}

export interface FaultProxyEvents {
  connection: [conn: ProxiedConnection];
  /** a fault took effect (`start`) or a stall ended (`end`) */
  fault: [conn: ProxiedConnection, phase: 'start' | 'end'];
  closed: [conn: ProxiedConnection];
}

export interface FaultProxy {
  readonly port: number;
  readonly stats: Readonly<FaultProxyStats>;
  /** every connection so far, in accept order */
  readonly connections: readonly ProxiedConnection[];
  readonly events: EventEmitter<FaultProxyEvents>;
  /** `random` (the default) draws the kind by weight; a kind forces it (its parameters are still drawn) */
  setMode(mode: FaultKind | 'random'): void;
  /** exact faults for the next connections, in order, before the mode applies (rng is still drawn) */
  planNext(...faults: Fault[]): void;
  /** the next connection not yet returned by nextConnection, waiting for it to be accepted */
  nextConnection(): Promise<ProxiedConnection>;
  /** destroys every connection and stops listening */
  close(): Promise<void>;
}

export async function startFaultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  const events = new EventEmitter<FaultProxyEvents>();
  const stats: FaultProxyStats = {
    connections: 0, open: 0, chosen: { clean: 0, cut: 0, stall: 0, blackhole: 0 }, applied: { cut: 0, stall: 0, blackhole: 0 },
    forwarded: { up: 0, down: 0 }, dropped: 0, targetErrors: 0,
  };
  const links: Link[] = [];
  const planned: Fault[] = [];
  let mode: FaultKind | 'random' = 'random';
  let handedOut = 0;
  let closing = false;
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    if (closing) return void client.destroy();
    const drawn = chooseFault(o.rng, o, mode === 'random' ? undefined : mode);
    const fault = planned.shift() ?? drawn;
    stats.connections++;
    stats.open++;
    stats.chosen[fault.kind]++;
    const link = new Link(links.length, fault, client, o.target, stats, events);
    links.push(link);
    events.emit('connection', link);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fault proxy: the server has no TCP address');
  return {
    port: address.port,
    stats,
    connections: links,
    events,
    setMode: (m) => void (mode = m),
    planNext: (...faults) => void planned.push(...faults),
    nextConnection: () => new Promise((resolve, reject) => {
      if (closing) return reject(new Error('fault proxy closed'));
      const take = (): void => {
        const link = links[handedOut];
        if (link) {
          handedOut++;
          resolve(link);
        } else events.once('connection', () => take());
      };
      take();
    }),
    close: async () => {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const l of links) l.destroy();
      await Promise.all([stopped, ...links.map((l) => l.closed)]);
    },
  };
}

/** One client connection and its link to the target. */
class Link implements ProxiedConnection {
  phase: 'pending' | 'active' | 'over' = 'pending';
  forwarded = { up: 0, down: 0 };
  dropped = 0;
  readonly closed: Promise<void>;
  readonly clientClosed: Promise<void>;
  private readonly upstream: Socket;
  private readonly sockets: Socket[];
  private readonly held = { up: false, down: false };
  private readonly queued: Record<Direction, Buffer[]> = { up: [], down: [] };
  private readonly draining = { up: false, down: false };
  private readonly ended = { up: false, down: false };
  private state: 'open' | 'cut' | 'blackhole' = 'open';
  private timers: NodeJS.Timeout[] = [];
  private live = 2;

  constructor(
    readonly index: number,
    readonly fault: Fault,
    private readonly client: Socket,
    target: { host: string; port: number },
    private readonly stats: FaultProxyStats,
    private readonly events: EventEmitter<FaultProxyEvents>,
  ) {
    let done!: () => void;
    this.closed = new Promise((resolve) => (done = resolve));
    this.clientClosed = new Promise((resolve) => client.once('close', () => resolve()));
    this.upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.sockets = [client, this.upstream];
    for (const s of this.sockets) {
      s.on('error', () => {}); // a reset or refused peer; 'close' follows
      // A clean close comes after both ends were passed on (and a stall still delivers what it holds);
      // a socket that failed takes the other with it, except inside a blackhole.
      s.once('close', (hadError) => {
        if (hadError && this.state !== 'blackhole') this.destroy();
        if (--this.live > 0) return;
        for (const t of this.timers) clearTimeout(t);
        stats.open--;
        events.emit('closed', this);
        done();
      });
    }
    let connected = false;
    this.upstream.once('error', () => void (connected || stats.targetErrors++));
    this.upstream.once('connect', () => {
      connected = true;
      this.start();
    });
  }

  private start(): void {
    for (const s of this.sockets) s.setNoDelay(true);
    this.pipe('up', this.client, this.upstream);
    this.pipe('down', this.upstream, this.client);
    const f = this.fault;
    if (f.kind !== 'clean' && 'ms' in f.onset) this.timers.push(setTimeout(() => this.fire(), f.onset.ms));
  }

  private pipe(dir: Direction, from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      const f = this.fault;
      if (this.phase === 'pending' && f.kind !== 'clean' && 'bytes' in f.onset && f.onset.direction === dir) {
        const before = f.onset.bytes - this.forwarded[dir] - this.queuedBytes(dir);
        if (chunk.length >= before) {
          this.deliver(dir, to, chunk.subarray(0, before));
          this.fire();
          chunk = chunk.subarray(before);
        }
      }
      this.deliver(dir, to, chunk);
    });
    from.on('end', () => {
      this.ended[dir] = true;
      if (this.state === 'blackhole') from.destroy();
      else this.flush(dir, to);
    });
    from.resume();
  }

  private queuedBytes(dir: Direction): number {
    return this.queued[dir].reduce((n, b) => n + b.length, 0);
  }

  private deliver(dir: Direction, to: Socket, chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.state !== 'open') {
      this.dropped += chunk.length;
      this.stats.dropped += chunk.length;
      return;
    }
    this.queued[dir].push(chunk);
    this.flush(dir, to);
  }

  /** Writes what is queued in `dir` unless held; passes an end on once the queue is empty. */
  private flush(dir: Direction, to: Socket): void {
    if (this.state !== 'open' || to.destroyed) return;
    while (!this.held[dir] && this.queued[dir].length > 0) {
      const chunk = this.queued[dir].shift()!;
      this.forwarded[dir] += chunk.length;
      this.stats.forwarded[dir] += chunk.length;
      if (!to.write(chunk) && !this.draining[dir]) {
        this.draining[dir] = true;
        to.once('drain', () => {
          this.draining[dir] = false;
          this.updateFlow(dir);
        });
      }
    }
    if (!this.held[dir] && this.ended[dir] && !to.writableEnded) to.end();
    this.updateFlow(dir);
  }

  /** The source of `dir` reads while its bytes can go on (or are being dropped). */
  private updateFlow(dir: Direction): void {
    const from = dir === 'up' ? this.client : this.upstream;
    if (this.state === 'open' && (this.held[dir] || this.draining[dir])) from.pause();
    else from.resume();
  }

  private fire(): void {
    const f = this.fault;
    if (this.phase !== 'pending' || f.kind === 'clean') return;
    this.phase = 'active';
    this.stats.applied[f.kind]++;
    this.events.emit('fault', this, 'start');
    if (f.kind === 'cut') {
      this.state = 'cut';
      for (const s of this.sockets) {
        if (f.reset && !s.destroyed) s.resetAndDestroy();
        else s.destroy();
      }
    } else if (f.kind === 'blackhole') {
      this.state = 'blackhole';
      for (const dir of ['up', 'down'] as const) {
        this.dropped += this.queuedBytes(dir);
        this.stats.dropped += this.queuedBytes(dir);
        this.queued[dir] = [];
        this.updateFlow(dir);
        if (this.ended[dir]) (dir === 'up' ? this.client : this.upstream).destroy();
      }
    } else {
      for (const dir of f.directions) this.held[dir] = true;
      for (const dir of f.directions) this.updateFlow(dir);
      this.timers.push(setTimeout(() => {
        this.phase = 'over';
        for (const dir of f.directions) this.held[dir] = false;
        this.events.emit('fault', this, 'end');
        this.flush('up', this.upstream);
        this.flush('down', this.client);
      }, f.ms));
    }
  }

  destroy(): void {
    for (const s of this.sockets) s.destroy();
  }
}
