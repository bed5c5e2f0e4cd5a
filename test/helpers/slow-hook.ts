/** A local webhook that answers each request after a delay: dispatches stay in flight long enough to stop the gateway among them. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlowHook {
  url: string;
  /** answer delay in ms; Infinity: never answer */
  delayMs: number;
  /** seqs (ferry-seq header) in arrival order, answered or not */
  arrived: number[];
  /** seqs answered 204, in answer order */
  answered: number[];
  /** requests arrived and not answered yet */
  pending(): number;
  close(): Promise<void>;
}

export async function startSlowHook(delayMs: number): Promise<SlowHook> {
  let open = 0;
  const hook = { delayMs, arrived: [] as number[], answered: [] as number[], pending: () => open } as SlowHook;
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      const seq = Number(req.headers['ferry-seq']);
      hook.arrived.push(seq);
      open++;
      if (!Number.isFinite(hook.delayMs)) return;
      const t = setTimeout(() => {
        timers.delete(t);
        open--;
        hook.answered.push(seq);
        res.writeHead(204).end();
      }, hook.delayMs);
      timers.add(t);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  hook.close = () => new Promise((r) => {
    for (const t of timers) clearTimeout(t);
    server.closeAllConnections();
    server.close(() => r());
  });
  return hook;
}
