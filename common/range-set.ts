/**
 * A set of seqs kept as disjoint, inclusive ranges: the packets above the cumulative ack point
 * that are already done (acked one by one, expired, dropped), and the gateway's dispatched seqs
 * above an agent's floor.
 *
 * Kept in an AVL tree ordered by range start (ranges are disjoint, so ends are in the same
 * order), so add, has, delete, takePrefix and dropThrough cost O(log n) (amortised: a call that
 * merges or drops k ranges pays for removing them, and each range is removed once). It was a
 * sorted array with `splice`: O(n) per insert, so a peer that sends every other seq in
 * descending order made it quadratic (200k inserts: 8.2 s against 56 ms ascending). A balanced
 * tree rather than a treap or skip list because an adversary chooses the insert order: the
 * worst case must be the bound, not the expected case. Written here (~150 lines) rather than
 * taken from a library: the agent runs on small devices and needs only these few operations.
 */
interface Node {
  a: number;
  b: number;
  l: Node | null;
  r: Node | null;
  h: number;
}

const height = (n: Node | null): number => (n ? n.h : 0);

function fix(n: Node): void {
  n.h = 1 + Math.max(height(n.l), height(n.r));
}

function rotateRight(n: Node): Node {
  const l = n.l!;
  n.l = l.r;
  l.r = n;
  fix(n);
  fix(l);
  return l;
}

function rotateLeft(n: Node): Node {
  const r = n.r!;
  n.r = r.l;
  r.l = n;
  fix(n);
  fix(r);
  return r;
}

function balance(n: Node): Node {
  fix(n);
  const bf = height(n.l) - height(n.r);
  if (bf > 1) {
    if (height(n.l!.l) < height(n.l!.r)) n.l = rotateLeft(n.l!);
    return rotateRight(n);
  }
  if (bf < -1) {
    if (height(n.r!.r) < height(n.r!.l)) n.r = rotateRight(n.r!);
    return rotateLeft(n);
  }
  return n;
}

function insertNode(n: Node | null, x: Node): Node {
  if (!n) return x;
  if (x.a < n.a) n.l = insertNode(n.l, x);
  else n.r = insertNode(n.r, x);
  return balance(n);
}

function removeMin(n: Node): Node | null {
  if (!n.l) return n.r;
  n.l = removeMin(n.l);
  return balance(n);
}

function removeNode(n: Node | null, a: number): Node | null {
  if (!n) return null;
  if (a < n.a) n.l = removeNode(n.l, a);
  else if (a > n.a) n.r = removeNode(n.r, a);
  else {
    if (!n.l) return n.r;
    if (!n.r) return n.l;
    let m = n.r;
    while (m.l) m = m.l;
    m.r = removeMin(n.r);
    m.l = n.l;
    return balance(m);
  }
  return balance(n);
}

const leaf = (a: number, b: number): Node => ({ a, b, l: null, r: null, h: 1 });

export class RangeSet {
  private root: Node | null = null;
  private count = 0;

  constructor(ranges: [number, number][] = []) {
    for (const [a, b] of ranges) this.add(a, b);
  }

  /** How many ranges. */
  get size(): number {
    return this.count;
  }

  /** The highest seq held, or 0 when empty. */
  get last(): number {
    let n = this.root;
    if (!n) return 0;
    while (n.r) n = n.r;
    return n.b;
  }

  /** How many seqs of [from, to] the set holds. */
  countIn(from: number, to: number): number {
    if (to < from) return 0;
    let n = 0;
    for (const x of this.touching(from, to)) n += Math.min(x.b, to) - Math.max(x.a, from) + 1;
    return n;
  }

  has(seq: number): boolean {
    const n = this.ceiling(seq);
    return n !== null && n.a <= seq;
  }

  /** Adds [from, to]; returns how many seqs were not in the set before. */
  add(from: number, to = from): number {
    if (to < from) return 0;
    // The ranges that overlap or touch [from, to] become one.
    const merged = this.touching(from - 1, to + 1);
    if (merged.length === 0) {
      this.root = insertNode(this.root, leaf(from, to));
      this.count++;
      return to - from + 1;
    }
    let covered = 0;
    for (const x of merged) covered += Math.max(0, Math.min(x.b, to) - Math.max(x.a, from) + 1);
    const first = merged[0]!;
    const lastEnd = merged[merged.length - 1]!.b;
    for (let i = 1; i < merged.length; i++) this.root = removeNode(this.root, merged[i]!.a);
    this.count -= merged.length - 1;
    // Widening the first in place keeps the order: it touches nothing that remains.
    first.a = Math.min(first.a, from);
    first.b = Math.max(lastEnd, to);
    return to - from + 1 - covered;
  }

  /** Removes [from, to]; returns how many seqs were in the set. */
  delete(from: number, to = from): number {
    if (to < from) return 0;
    let removed = 0;
    for (const x of this.touching(from, to)) {
      removed += Math.min(x.b, to) - Math.max(x.a, from) + 1;
      this.root = removeNode(this.root, x.a);
      this.count--;
      if (x.a < from) this.insertRange(x.a, from - 1);
      if (x.b > to) this.insertRange(to + 1, x.b);
    }
    return removed;
  }

  /** Removes and returns the highest seq of a range that starts at `next` or below, if there is one. */
  takePrefix(next: number): number | null {
    const first = this.first();
    if (!first || first.a > next) return null;
    this.root = removeMin(this.root!);
    this.count--;
    return first.b;
  }

  /** Drops everything at or below `seq`; returns how many seqs were dropped. */
  dropThrough(seq: number): number {
    let dropped = 0;
    for (let first = this.first(); first && first.a <= seq; first = this.first()) {
      if (first.b > seq) {
        dropped += seq - first.a + 1;
        first.a = seq + 1;
        break;
      }
      dropped += first.b - first.a + 1;
      this.root = removeMin(this.root!);
      this.count--;
    }
    return dropped;
  }

  /** The ranges in order, at most `rangesMax` of them (lowest first). */
  toArray(rangesMax = Infinity): [number, number][] {
    const out: [number, number][] = [];
    const stack: Node[] = [];
    let n = this.root;
    while ((n || stack.length > 0) && out.length < rangesMax) {
      while (n) {
        stack.push(n);
        n = n.l;
      }
      const x = stack.pop()!;
      out.push([x.a, x.b]);
      n = x.r;
    }
    return out;
  }

  private insertRange(a: number, b: number): void {
    this.root = insertNode(this.root, leaf(a, b));
    this.count++;
  }

  private first(): Node | null {
    let n = this.root;
    if (!n) return null;
    while (n.l) n = n.l;
    return n;
  }

  /** The range with the lowest end >= seq. */
  private ceiling(seq: number): Node | null {
    let best: Node | null = null;
    for (let n = this.root; n; ) {
      if (n.b >= seq) {
        best = n;
        n = n.l;
      } else n = n.r;
    }
    return best;
  }

  /** The ranges that hold a seq of [from, to], in order: O(log n + k). */
  private touching(from: number, to: number): Node[] {
    const out: Node[] = [];
    const stack: Node[] = [];
    // Down to the first range ending at or after `from`, keeping the path whose ranges follow it.
    for (let n = this.root; n; ) {
      if (n.b >= from) {
        stack.push(n);
        n = n.l;
      } else n = n.r;
    }
    while (stack.length > 0) {
      const x = stack.pop()!;
      if (x.a > to) break;
      out.push(x);
      for (let n = x.r; n; n = n.l) stack.push(n);
    }
    return out;
  }
}
