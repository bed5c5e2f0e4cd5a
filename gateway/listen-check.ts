/**
 * Every listen address is tried before the gateway creates or locks its dataDir: a port in use,
 * a port below 1024 without the right, or an address not on this host stops the start with
 * LISTEN_FAILED and leaves no directory behind. The real listeners bind later, once the dispatch
 * log is recovered (they accept as soon as they bind, so they cannot bind first); a process that
 * takes the port in between still gets LISTEN_FAILED from that bind.
 */
import { createServer } from 'node:net';
import { bind } from './listener.js';

/** Binds each `listen.KEY` address on a bare server and closes it again; rejects with the first LISTEN_FAILED. */
export async function checkListenAddresses(listen: Readonly<Record<string, string | false | undefined>>): Promise<void> {
  for (const [key, hostPort] of Object.entries(listen)) {
    if (hostPort === undefined || hostPort === false) continue;
    const server = createServer();
    try {
      await bind(server, hostPort, `listen.${key}`);
    } finally {
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
