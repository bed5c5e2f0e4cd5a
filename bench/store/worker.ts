/**
 * One store task in its own process (so /proc/self/io and RSS belong to one side only).
 * usage: worker TASK_JSON. Prints `ready` once set up; a task that is measured under the
 * harness's counters (append-ack) then waits for SIGUSR2 before it starts. The last stdout line
 * is the result as JSON.
 */
import * as ferry from './ferry-side.js';
import * as sqlite from './sqlite-side.js';
import type { ResultOf, Task } from './task.js';

const task = JSON.parse(process.argv[2] ?? 'null') as Task | null;
if (task === null) {
  process.stderr.write('usage: worker TASK_JSON\n');
  process.exit(2);
}

/**
 * Called by a side once it is set up: says `ready`, resolves on the go signal. SIGUSR1 belongs to
 * Node's inspector, so the signal is SIGUSR2. A signal listener does not keep the event loop
 * alive; a timer does, until the signal came.
 */
const gate = (): Promise<void> =>
  new Promise<void>((resolve) => {
    const alive = setInterval(() => undefined, 60_000);
    process.once('SIGUSR2', () => {
      clearInterval(alive);
      resolve();
    });
    process.stdout.write('ready\n');
  });

async function run(t: Task): Promise<ResultOf[Task['op']]> {
  const side = t.side === 'ferry' ? ferry : sqlite;
  switch (t.op) {
    case 'append-ack':
      return side.appendAck(t, gate);
    case 'fill':
      return side.fill(t);
    case 'footprint':
      return side.footprint(t);
    case 'open':
      return side.openTimed(t);
    case 'crash-load':
      return side.crashLoad(t);
  }
}

try {
  const result = await run(task);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // Done: a timer or handle a store forgot must not keep the worker (and the harness) waiting.
  process.exit(0);
} catch (err) {
  process.stderr.write(`worker ${task.side} ${task.op}: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
