// A ferry gateway handler that prints one JSON line per packet on standard output.
// Copy it, change handle(), and point a route at it (docs/handlers.md explains the contract):
//
//   routes:
//     - match: "debug/#"
//       handler: module
//       module: ./handlers/stdout-handler.js   # relative to the gateway's working directory
//       options: { pretty: false }
//
// Plain JavaScript (an ES module): the gateway imports it as it is, no build step.

/**
 * The default export: called once at gateway start with the route's `options` and a logger.
 * It may be async (open a connection here, and fail here if the backend is misconfigured: the
 * gateway then refuses to start with the module's path in the message).
 */
export default function createHandler(options, { log }) {
  const indent = options.pretty === true ? 2 : undefined;
  const out = process.stdout;
  // The highest seq printed per agent: a packet handed over again (after a gateway crash between
  // our `ok` and its dispatch record) is acknowledged without printing it twice.
  const printed = new Map();
  log.info('stdout handler: ready', { pretty: indent !== undefined });

  return {
    kind: 'stdout',
    // Lines are written in call order, so the gateway may hand over several packets of one target
    // before the first resolved. Leave it out (1) if your backend cannot keep call order.
    inflightMax: 64,

    /** Never throws: every outcome is a result. */
    handle(packet) {
      if (packet.seq <= (printed.get(packet.agent) ?? 0)) return Promise.resolve({ ok: true });
      const data = packet.data instanceof Uint8Array ? { base64: Buffer.from(packet.data).toString('base64') } : packet.data;
      let line;
      try {
        line = JSON.stringify({ agent: packet.agent, seq: packet.seq, target: packet.target, ts: packet.ts, data }, null, indent);
      } catch (err) {
        // This packet can never be printed: permanent, it goes to the agent's dead letters.
        return Promise.resolve({ ok: false, retryable: false, code: 'HANDLER_REJECTED', message: `cannot print: ${err.message}` });
      }
      return new Promise((resolve) => {
        out.write(`${line}\n`, (err) => {
          if (err) {
            // Not now: the agent keeps the packet and offers it again after retryAfterMs.
            resolve({ ok: false, retryable: true, code: 'HANDLER_FAILED', message: `stdout: ${err.message}`, retryAfterMs: 1000 });
            return;
          }
          if (packet.seq > (printed.get(packet.agent) ?? 0)) printed.set(packet.agent, packet.seq);
          resolve({ ok: true });
        });
      });
    },

    async close() {
      log.info('stdout handler: closed');
    },
  };
}
