import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import type { SimConfig } from './config.js';
import { openPtyPair, type PtyOptions } from './pty.js';
import { FirmwareSim } from './sim.js';

export interface RunSimOptions {
  log?: (line: string) => void;
  /** Called once the device side can be opened and readings are flowing. */
  onReady?: (devicePath: string) => void;
  /** Bytes written to the serial port but not yet taken by it; readings beyond are dropped. */
  pendingBytesMax?: number;
  /** Passed on to openPtyPair. */
  pty?: Omit<PtyOptions, 'log'>;
}

export interface SimHandle {
  /** The path the agent opens. */
  devicePath: string;
  /** The socat process that holds the pty pair. */
  socatPid: number;
  /** Stops the readings, closes the serial port and the pty pair. Idempotent. */
  stop(): Promise<void>;
  /** Readings produced (written or dropped). */
  readings(): number;
  /** Readings dropped because the serial port's write queue was full (nobody reading). */
  dropped(): number;
  /** Resolves once the sim has stopped: stop(), durationMs elapsed, or socat died. */
  closed: Promise<void>;
}

/**
 * Small on purpose: a reading that waited here while nobody read the device is stale when it
 * arrives, so only a few ticks' worth at the highest rate (10 ms of 10 kHz is ~1 KiB) may wait in memory.
 */
export const PENDING_BYTES_MAX = 8 * 1024;
const portCloseMsMax = 2000;

/**
 * Runs the simulated microcontroller on a real pseudo-terminal pair: the only place the sim meets
 * real IO (socat, the serial port, the clock, timers, Math.random).
 *
 * The agent may open, close and reopen `devicePath` at any time. While nobody reads it, the
 * kernel buffers readings; once its buffers are full, writes queue in serialport, and past
 * `pendingBytesMax` readings are dropped (counted in `dropped()`) instead of growing memory.
 */
export async function runSim(config: SimConfig, opts: RunSimOptions = {}): Promise<SimHandle> {
  const log = opts.log ?? (() => {});
  const pendingBytesMax = opts.pendingBytesMax ?? PENDING_BYTES_MAX;
  const pair = await openPtyPair(config.link, { ...opts.pty, log });

  const port = new SerialPort({ path: pair.simPath, baudRate: 115200, autoOpen: false });
  try {
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  } catch (err) {
    await pair.close();
    throw err;
  }
  port.on('error', (err) => log(`firmware-sim: serial port error: ${err.message}`));

  let pendingBytes = 0;
  let batch = '';
  let dropped = 0;
  let stopped = false;
  const flush = (): void => {
    const chunk = batch;
    batch = '';
    if (stopped || chunk === '') return;
    port.write(chunk, 'latin1', () => {
      pendingBytes -= chunk.length;
    });
  };
  const write = (line: string): void => {
    if (pendingBytes + line.length > pendingBytesMax) {
      if (dropped++ === 0) log(`firmware-sim: serial output backed up past ${pendingBytesMax} bytes; dropping readings`);
      return;
    }
    // Readings of one tick go out as one write.
    if (batch === '') queueMicrotask(flush);
    batch += line;
    pendingBytes += line.length;
  };

  const sim = new FirmwareSim(config, {
    clock: { now: () => performance.now() },
    timers: {
      setInterval: (fn, ms) => setInterval(fn, ms),
      clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
    },
    rng: Math.random,
    write,
    log,
  });
  port.on('data', (data: Buffer) => sim.receive(data.toString('latin1')));

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let durationTimer: NodeJS.Timeout | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      stopped = true;
      sim.stop();
      clearTimeout(durationTimer);
      if (port.isOpen) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, portCloseMsMax);
          port.close(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      await pair.close();
      log(`firmware-sim: stopped after ${sim.readings} readings (${dropped} dropped, ${sim.skipped} skipped)`);
      resolveClosed();
    })());

  void pair.exited.then(({ code, signal }) => {
    if (stopping) return;
    log(`firmware-sim: socat exited unexpectedly (${signal ?? `code ${code}`}); stopping`);
    void stop();
  });

  sim.start();
  if (config.durationMs !== undefined) durationTimer = setTimeout(() => void stop(), config.durationMs);
  log(`firmware-sim: ${config.rateHz} Hz ${config.waveform.kind} readings on ${pair.devicePath}`);
  opts.onReady?.(pair.devicePath);
  return { devicePath: pair.devicePath, socatPid: pair.pid, stop, readings: () => sim.readings, dropped: () => dropped, closed };
}
