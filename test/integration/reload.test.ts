/**
 * SIGHUP with real processes: the gateway re-reads its configuration while an agent streams. A new
 * route takes effect without dropping the session; a key that cannot change live is named and
 * ignored; an invalid file, or a handler that cannot be made, is refused and the running routes stay.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { freePort } from '../helpers/free-port.js';
import { makeRig, sleep, waitFor, type Rig } from '../helpers/ferry.js';

const linesOf = async (path: string): Promise<{ seq: number; target: string }[]> =>
  (await readFile(path, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));

const count = (text: string, re: RegExp): number => text.split('\n').filter((l) => re.test(l)).length;

/** Sends one packet to each target every 20 ms until stopped; collects the seqs per target. */
function stream(rig: Rig, targets: string[]) {
  const seqs = new Map<string, number[]>(targets.map((x) => [x, []]));
  let on = true;
  const running = (async () => {
    while (on) {
      for (const target of targets) {
        const r = await localRequest(rig.socket, { op: 'send', target, data: { at: Date.now() } }, 5000);
        if (!r.ok) throw new Error(`send refused: ${r.code}`);
        seqs.get(target)!.push(r.seq as number);
      }
      await sleep(20);
    }
  })();
  return { seqs, stop: async () => ((on = false), await running) };
}

t.test('reload - SIGHUP adds a route while the agent streams; invalid configs are refused and the old routes stay', async (t) => {
  const rig = await makeRig({ agentId: 'reloader', serial: false, routes: '  - match: "a/#"\n    handler: file\n    path: {received}\n' });
  t.teardown(() => rig.cleanup());
  const fileB = join(rig.dir, 'received-b.jsonl');
  const config = join(rig.dir, 'gateway.yaml');
  const original = await readFile(config, 'utf8');
  const gw = await rig.start('gateway');
  await rig.start('agent');
  const flowA = stream(rig, ['a/x']);
  await waitFor('packets of a/x in the file', async () => ((await linesOf(rig.received)).length >= 5 ? true : undefined));

  // A new route for b/#, and a listen port that can only change with a restart.
  const otherPort = await freePort();
  const withB = original
    .replace(`tcp: 127.0.0.1:${rig.port}`, `tcp: 127.0.0.1:${otherPort}`)
    .replace('routes:\n', `routes:\n  - match: "b/#"\n    handler: file\n    path: ${fileB}\n`);
  t.not(withB, original, 'the test rewrote the config');
  await writeFile(config, withB);
  gw.kill('SIGHUP');
  await waitFor('the gateway to log the reload', async () => (/gateway: reloaded/.test(gw.output()) ? true : undefined));
  t.ok(logRecords(gw.output()).some((r) => /need a restart/.test(String(r.msg)) && JSON.stringify(r.keys) === '["listen"]'), 'the changed listen key is named as needing a restart');
  const flowB = stream(rig, ['b/x']);
  await waitFor('packets of b/x in the new file', async () => ((await linesOf(fileB)).length >= 5 ? true : undefined));

  // Refused: a schema error, then a handler that cannot be made (its module does not exist).
  await writeFile(config, original.replace('routes:\n', 'routes:\n  - match: "c/#"\n    handler: file\n'));
  gw.kill('SIGHUP');
  await waitFor('the first refusal', async () => (count(gw.output(), /reload refused/) >= 1 ? true : undefined));
  await writeFile(config, original.replace('routes:\n', `routes:\n  - match: "c/#"\n    handler: module\n    module: ${join(rig.dir, 'missing.mjs')}\n`));
  gw.kill('SIGHUP');
  await waitFor('the second refusal', async () => (count(gw.output(), /reload refused/) >= 2 ? true : undefined));
  const refusals = gw.output().split('\n').filter((l) => /reload refused/.test(l));
  t.match(refusals[0], /CONFIG_INVALID[^\n]*routes/, 'the schema error is logged with its code and the field');
  t.match(refusals[1], /routes\[0\][^\n]*missing\.mjs/, 'the handler that failed is named with its route and module');

  // The routes of the first reload still dispatch, to both files, in the same session.
  const aBefore = (await linesOf(rig.received)).length;
  const bBefore = (await linesOf(fileB)).length;
  await waitFor('both targets still flowing after the refusals', async () => {
    const [a, b] = [await linesOf(rig.received), await linesOf(fileB)];
    return a.length > aBefore + 5 && b.length > bBefore + 5 ? true : undefined;
  });
  await Promise.all([flowA.stop(), flowB.stop()]);
  await waitFor('the agent backlog drained', async () => {
    const s = await rig.agentStats();
    return s && s.backlog === 0 && s.inflight === 0 ? true : undefined;
  });
  const [a, b] = [await linesOf(rig.received), await linesOf(fileB)];
  t.same(a.map((l) => l.seq), flowA.seqs.get('a/x'), 'every a/x packet is in the first file, once, in order');
  t.same(b.map((l) => l.seq), flowB.seqs.get('b/x'), 'every b/x packet is in the new file, once, in order');
  t.equal(count(gw.output(), /session: agent connected/), 1, 'the agent connected once: no session was dropped');
  t.equal(count(gw.output(), /session: closed/), 0, 'the gateway logged no session end');
  const s = await rig.agentStats();
  t.equal(s?.deadLetters, 0, 'nothing went to the dead letters');
});

/** The JSON log lines among a process's output (stdout's plain lines are skipped). */
function logRecords(output: string): Record<string, unknown>[] {
  return output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}
