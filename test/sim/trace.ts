/**
 * What happened in one simulated run, as a hash (two runs of one seed must give the same one) and,
 * for replays, as lines: every fault, frame, append, outcome and handler call is an event.
 */
import { createHash, type Hash } from 'node:crypto';

export class Trace {
  private readonly hash: Hash = createHash('sha256');
  private readonly recent: string[] = [];
  events = 0;

  /** @param keep how many of the latest events to keep as text (all of them when verbose) */
  constructor(private readonly opts: { verbose?: boolean; keep?: number; now: () => number; write?: (line: string) => void }) {}

  event(kind: string, detail: string): void {
    const line = `${this.opts.now()} ${kind} ${detail}`;
    this.hash.update(line);
    this.hash.update('\n');
    this.events++;
    if (this.opts.verbose) (this.opts.write ?? ((l: string) => process.stdout.write(`${l}\n`)))(line);
    const keep = this.opts.keep ?? 60;
    if (keep > 0) {
      this.recent.push(line);
      if (this.recent.length > keep) this.recent.shift();
    }
  }

  /** The latest events as text. */
  tail(): string[] {
    return [...this.recent];
  }

  /** The hash of every event so far (the first 16 hex digits). */
  digest(): string {
    return this.hash.copy().digest('hex').slice(0, 16);
  }
}
