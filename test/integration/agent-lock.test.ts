import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRig } from '../helpers/ferry.js';

t.test('agent - a store LOCK file naming a live, unrelated PID (reused after a reboot) does not stop ferry agent from starting', async (t) => {
  const rig = await makeRig({ agentId: 'lock-1', serial: false });
  t.teardown(() => rig.cleanup());
  // What a PID lock left after a power cut looks like once early boot has reused its PID:
  // pid 1 is always alive.
  await mkdir(join(rig.dir, 'agent', 'store'), { recursive: true });
  await writeFile(join(rig.dir, 'agent', 'store', 'LOCK'), '1\n');
  await rig.start('agent'); // rejects if the agent exits (it did, with STORE_LOCKED "in use by process 1")
  t.ok(await rig.agentStats(), 'the agent runs and answers on its local socket');
});

t.test('agent - a second ferry agent on the same store fails with STORE_LOCKED', async (t) => {
  const rig = await makeRig({ agentId: 'lock-2', serial: false });
  t.teardown(() => rig.cleanup());
  await rig.start('agent');
  const err = await rig.start('agent').then(() => null, (e: Error) => e);
  t.ok(err, 'the second agent did not start');
  t.match(err?.message, /STORE_LOCKED/, 'its output names STORE_LOCKED');
  t.ok(await rig.agentStats(), 'the first one still runs');
});
