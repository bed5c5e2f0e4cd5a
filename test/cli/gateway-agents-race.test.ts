/**
 * Issue 10 case 5: `ferry gateway add-agent | issue-token | revoke-agent` run at the same time as
 * real CLI processes (dist/cli/ferry.js: run `npx tsc -p .` first). Each command re-reads,
 * changes and replaces DATADIR/agents.json; without a lock one command's write undid another's
 * (a printed "revoked" whose token still verified), and a shared temporary file mixed two
 * writes (`not valid JSON … Extra data`), after which every command failed.
 */
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentRegistry, agentsFileName, parseAgents } from '../../gateway/agents.js';
import { runFerry, type Run } from '../helpers/cli-run.js';

// Each round starts six processes at once (about a second each on an idle machine); main lost a change in the first.
const roundsDefault = 4;
const rounds = Number(process.env.ROUNDS ?? roundsDefault);

t.test('gateway agents CLI - concurrent add-agent, issue-token and revoke-agent lose nothing and never damage the file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-agents-race-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'gw');
  const path = join(dataDir, agentsFileName);
  const ferry = (sub: string, agent: string): Promise<Run> => runFerry(['gateway', sub, '--data-dir', dataDir, '--agent', agent], 60_000);
  // The victims are registered up front, in-process (quicker than a CLI process each): the race is in the rounds.
  const setup = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
  await setup.add('steady');
  const victimTokens = new Map<string, string>();
  for (let round = 0; round < rounds; round++) {
    for (const v of [`victim-${round}-a`, `victim-${round}-b`]) victimTokens.set(v, await setup.add(v));
  }
  setup.close();
  const failures: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const victims = [`victim-${round}-a`, `victim-${round}-b`];
    const added = [`new-${round}-a`, `new-${round}-b`, `new-${round}-c`];
    // Everything at once: two revocations, three registrations and a new token for `steady`.
    const [revokes, adds, issued] = await Promise.all([
      Promise.all(victims.map((v) => ferry('revoke-agent', v))),
      Promise.all(added.map((a) => ferry('add-agent', a))),
      ferry('issue-token', 'steady'),
    ]);
    const text = await readFile(path, 'utf8');
    try {
      parseAgents(text, path);
    } catch (err) {
      failures.push(`round ${round}: the file is damaged: ${(err as Error).message}`);
      break;
    }
    const registry = await AgentRegistry.open(dataDir, { watchIntervalMs: 0 });
    for (const [i, v] of victims.entries()) {
      const r = revokes[i]!;
      if (r.code !== 0) failures.push(`round ${round}: revoke-agent ${v} failed: ${r.stderr.trim()}`);
      else if (r.stdout !== `agent ${v} revoked\n`) failures.push(`round ${round}: revoke-agent ${v} printed ${JSON.stringify(r.stdout)}`);
      else if (registry.get(v)?.revoked !== true || registry.verifyToken(v, victimTokens.get(v)!)) failures.push(`round ${round}: ${v}: printed "revoked" but the revocation was lost`);
    }
    for (const [i, a] of added.entries()) {
      const r = adds[i]!;
      if (r.code !== 0) failures.push(`round ${round}: add-agent ${a} failed: ${r.stderr.trim()}`);
      else if (!registry.verifyToken(a, r.stdout.trim())) failures.push(`round ${round}: add-agent ${a} printed a token that does not verify`);
    }
    if (issued.code !== 0) failures.push(`round ${round}: issue-token steady failed: ${issued.stderr.trim()}`);
    else {
      if (!registry.verifyToken('steady', issued.stdout.trim())) failures.push(`round ${round}: issue-token printed a token that does not verify`);
    }
    registry.close();
    if (failures.length > 0) break;
  }
  t.same(failures, [], `${rounds} rounds (ROUNDS= to change)`);
});

t.test('gateway agents CLI - a damaged agents.json: every command says which file and how to fix it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-agents-damaged-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'gw');
  t.equal((await runFerry(['gateway', 'add-agent', '--data-dir', dataDir, '--agent', 'pi-1'])).code, 0);
  const path = join(dataDir, agentsFileName);
  const good = await readFile(path, 'utf8');
  await writeFile(path, `${good}${good}`); // what two writes mixed in one temporary file looked like: "Extra data"
  for (const args of [['list-agents'], ['add-agent', '--agent', 'pi-2'], ['revoke-agent', '--agent', 'pi-1']]) {
    const r = await runFerry(['gateway', ...args, '--data-dir', dataDir]);
    t.equal(r.code, 1, `${args[0]} fails`);
    t.match(r.stderr, `${path}: not valid JSON`, `${args[0]}: names the file`);
    t.match(r.stderr, /move it aside and register the agents again/, `${args[0]}: says how to recover: ${r.stderr.trim()}`);
    t.match(r.stderr, /\[CONFIG_INVALID\]/);
  }
  t.equal(await readFile(path, 'utf8'), `${good}${good}`, 'no command wrote over the damaged file');
});
