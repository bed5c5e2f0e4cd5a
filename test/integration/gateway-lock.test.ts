import t from 'tap';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFerry, stopProcess, type FerryProcess } from '../../cli/proc.js';
import { freePort } from '../helpers/free-port.js';

t.test('gateway - a second gateway on the same dataDir exits with DATA_DIR_LOCKED; once the first is SIGKILLed a new one starts', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-it-lock-'));
  const procs: FerryProcess[] = [];
  t.teardown(async () => {
    await Promise.all(procs.map((p) => stopProcess(p, 2000)));
    await rm(dir, { recursive: true, force: true });
  });
  const dataDir = join(dir, 'gw');
  await symlink(dataDir, join(dir, 'gw-link')); // dangling until the first gateway creates gw
  /** A gateway config on its own free port, so only the dataDir is shared. */
  const start = async (name: string, dataDirPath: string): Promise<FerryProcess> => {
    await writeFile(join(dir, `${name}.yaml`), `listen:\n  tcp: 127.0.0.1:${await freePort()}\n  admin: 127.0.0.1:0\ndataDir: ${dataDirPath}\nroutes:\n  - match: "#"\n    handler: file\n    path: ${join(dir, 'received.jsonl')}\n`);
    const p = startFerry(['gateway', '--config', join(dir, `${name}.yaml`)], { readyPattern: /ferry gateway listening/, logFile: join(dir, `${name}.log`) });
    procs.push(p);
    return p;
  };
  /** Waits until the process is either ready or gone, whichever comes first. */
  const outcome = (p: FerryProcess): Promise<'ready' | { code: number | null }> =>
    Promise.race([p.ready.then(() => 'ready' as const, () => p.exited.then((e) => ({ code: e.code }))), p.exited.then((e) => ({ code: e.code }))]);

  const first = await start('first', dataDir);
  await first.ready;
  t.equal((await readFile(join(dataDir, 'LOCK'), 'utf8').catch(() => '')).trim(), String(first.pid), 'the LOCK file names the running gateway');

  for (const [name, path] of [['second', dataDir], ['second-via-symlink', join(dir, 'gw-link')]] as const) {
    const second = await start(name, path);
    const end = await outcome(second);
    t.not(end, 'ready', `${name}: it did not start`);
    if (end !== 'ready') t.equal(end.code, 1, `${name}: exit status 1`);
    t.match(second.output(), /\[DATA_DIR_LOCKED\]/, `${name}: its output names DATA_DIR_LOCKED`);
    t.match(second.output(), `pid ${first.pid}`, `${name}: and the running gateway's PID`);
  }

  first.kill('SIGKILL');
  await first.exited;
  const third = await start('third', dataDir);
  t.equal(await outcome(third), 'ready', 'after the first was SIGKILLed a new gateway starts on its dataDir at once');
  await stopProcess(third);
  const after = await start('fourth', dataDir);
  t.equal(await outcome(after), 'ready', 'and after a clean stop too');
});
