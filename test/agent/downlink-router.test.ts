/** The agent's downlink routes (agent/downlink/router.ts): in order, the first match wins. */
import t from 'tap';
import { createRouter } from '../../agent/downlink/router.js';
import { LocalSubscribers } from '../../agent/downlink/local-subscribers.js';
import type { SerialCommands } from '../../agent/downlink/serial-consumer.js';
import { ExecConsumer } from '../../agent/downlink/exec-consumer.js';
import { realClock } from '../../common/clock.js';
import { silentLog } from '../../common/log.js';
import { agentConfigSchema } from '../../agent/config.js';

t.test('router - routes are tried in order and the first whose match fits wins; none: undefined', async (t) => {
  const config = agentConfigSchema.parse({
    id: 'a', gateway: 'tcp://127.0.0.1:1', dataDir: '/tmp/x',
    sources: [{ kind: 'serial', name: 'mcu', path: '/dev/null' }],
    downlink: {
      routes: [
        { match: 'cfg/interval', to: 'serial', source: 'mcu' },
        { match: 'cfg/*', to: 'local' },
        { match: '#', to: 'exec', command: ['/bin/true'] },
      ],
    },
  });
  const serial = { consumer: (timeoutMs: number) => ({ deliver: async () => ({ ok: true as const }), timeoutMs, kind: 'serial' }) } as unknown as SerialCommands;
  const asked: string[] = [];
  const router = createRouter(config.downlink.routes, {
    serial: (name) => {
      asked.push(name);
      return serial;
    },
    local: new LocalSubscribers({ clock: realClock, log: silentLog }),
    exec: { clock: realClock, log: silentLog },
  });
  t.same(asked, ['mcu'], 'the serial route asked for its source by name');
  t.match(router.route('cfg/interval'), { kind: 'serial', timeoutMs: 5000 }, 'the exact route, listed first, wins over the prefix');
  const local = router.route('cfg/threshold');
  t.ok(local && !(local instanceof ExecConsumer) && !('kind' in local), 'the prefix route: local');
  t.ok(router.route('anything/else') instanceof ExecConsumer, 'the catch-all last');
  const none = createRouter(config.downlink.routes.slice(0, 2), { serial: () => serial, local: new LocalSubscribers({ clock: realClock, log: silentLog }), exec: { clock: realClock, log: silentLog } });
  t.equal(none.route('other'), undefined, 'no match: no consumer (the inbox refuses DOWNLINK_NO_ROUTE)');
  await router.close();
});
