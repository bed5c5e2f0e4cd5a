/**
 * Compares what an agent generated (seqs 1..lastSeq: the store hands out seqs without gaps) with
 * what a file handler wrote (JSON lines), counted from the file itself.
 */
export interface Tally {
  generated: number;
  received: number;
  duplicates: number;
  missing: number;
  outOfOrder: number;
  /** every generated packet arrived exactly once, in seq order per target (targets do not wait for each other) */
  ok: boolean;
}

export function tallyFile(text: string, agent: string, lastSeq: number): Tally {
  const seen = new Set<number>();
  let received = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  const prevOf = new Map<unknown, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const v = JSON.parse(line) as { agent?: unknown; seq?: unknown; target?: unknown };
    if (v.agent !== agent || typeof v.seq !== 'number') continue;
    received++;
    const prev = prevOf.get(v.target) ?? 0;
    if (seen.has(v.seq)) duplicates++;
    else if (v.seq < prev) outOfOrder++;
    seen.add(v.seq);
    prevOf.set(v.target, Math.max(prev, v.seq));
  }
  let missing = 0;
  for (let s = 1; s <= lastSeq; s++) if (!seen.has(s)) missing++;
  const extra = [...seen].filter((s) => s < 1 || s > lastSeq).length;
  return { generated: lastSeq, received, duplicates, missing, outOfOrder, ok: duplicates === 0 && missing === 0 && outOfOrder === 0 && extra === 0 && lastSeq > 0 };
}
