/**
 * Runs until SIGINT/SIGTERM, then stops gracefully. A second signal, or `forceAfterMs` after the
 * first, exits 0 at once: what is durable stays (unacked packets are kept and sent again).
 */
export function untilSignal(stop: () => Promise<void>, forceAfterMs?: number): Promise<number> {
  return new Promise((resolve) => {
    const force = (why: string): void => {
      process.stderr.write(`ferry: ${why}; exiting now with what is durable (unacked packets are sent again after the next start)\n`);
      process.exit(0);
    };
    const onSignal = (): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.once('SIGINT', () => force('a second signal while stopping'));
      process.once('SIGTERM', () => force('a second signal while stopping'));
      if (forceAfterMs !== undefined) setTimeout(() => force(`stopping took longer than ${forceAfterMs} ms`), forceAfterMs).unref();
      stop().then(() => resolve(0), () => resolve(1));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
