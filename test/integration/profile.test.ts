import t from 'tap';
import { startFerry, stopProcess } from '../../cli/proc.js';
import { makeRig, waitFor } from '../helpers/ferry.js';

const GiB = 2 ** 30;

t.test('agent --profile - the store limit and the in-flight window come from the hardware profile', async (t) => {
  const rig = await makeRig({ serial: false });
  t.teardown(() => rig.cleanup());
  const seen: Record<string, { storeBytesMax: number; inflightPacketsMax: number }> = {};
  for (const profile of ['pi-zero-2w', 'pi-4b']) {
    const agent = startFerry(['agent', '--config', `${rig.dir}/agent.yaml`, '--profile', profile], { readyPattern: /ferry agent running/ });
    await agent.ready;
    const stats = await waitFor('agent stats', () => rig.agentStats().then((s) => s ?? undefined));
    seen[profile] = stats.limits;
    await stopProcess(agent);
  }
  // Pi Zero 2 W: 512 MiB RAM gets the small window; Pi 4B: 4 GiB gets the large one (hw/limits.ts).
  t.equal(seen['pi-zero-2w']?.inflightPacketsMax, 256, 'Pi Zero 2 W: 256 packets in flight');
  t.equal(seen['pi-4b']?.inflightPacketsMax, 1024, 'Pi 4B: 1024 packets in flight');
  // Both boot from SD cards, where the store is capped at 1 GiB (5% of 32 GB and of 64 GB exceed it).
  t.equal(seen['pi-zero-2w']?.storeBytesMax, GiB, 'Pi Zero 2 W store: 1 GiB');
  t.equal(seen['pi-4b']?.storeBytesMax, GiB, 'Pi 4B store: 1 GiB');
});

t.test('agent --profile - an unknown profile stops the agent before it starts, naming the known ones', async (t) => {
  const rig = await makeRig({ serial: false });
  t.teardown(() => rig.cleanup());
  const agent = startFerry(['agent', '--config', `${rig.dir}/agent.yaml`, '--profile', 'pi-99'], { readyPattern: /ferry agent running/ });
  const exit = await agent.exited;
  t.not(exit.code, 0, 'non-zero exit');
  t.match(agent.output(), /PROFILE_INVALID/, 'with the profile error code');
  t.match(agent.output(), /pi-zero-2w/, 'listing a known profile');
});
