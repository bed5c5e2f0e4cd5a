/**
 * log.format (issue 13, logs): a real agent with `log.format: pretty` writes readable lines on
 * stderr (pino-pretty), not JSON; with the default (`auto`) and stderr not a terminal, JSON lines.
 */
import t from 'tap';
import { makeRig } from '../helpers/ferry.js';

/** The agent's line with this message, from its output (stdout and stderr). */
function lineWith(output: string, text: string): string | undefined {
  return output.split('\n').find((l) => l.includes(text));
}

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

t.test('log format - pretty: a readable line, not JSON', async (t) => {
  const rig = await makeRig({ agentId: 'pretty-agent', serial: false, agentYaml: 'log:\n  format: pretty\n' });
  t.teardown(() => rig.cleanup());
  const agent = await rig.start('agent');
  const line = lineWith(agent.output(), 'agent: starting');
  t.ok(line !== undefined, 'the start line was logged');
  t.notOk(isJson(line!), `it is not JSON: ${line}`);
  t.match(line, /INFO.*agent: starting/, 'it names the level and the message');
  t.notMatch(line, /\x1b\[/, 'no colours: stderr is not a terminal');
});

t.test('log format - default: JSON lines when stderr is not a terminal', async (t) => {
  const rig = await makeRig({ agentId: 'json-agent', serial: false });
  t.teardown(() => rig.cleanup());
  const agent = await rig.start('agent');
  const line = lineWith(agent.output(), 'agent: starting');
  t.ok(line !== undefined && isJson(line), `a JSON line: ${line}`);
  const parsed = JSON.parse(line!) as { level: string; msg: string; time: string; agent: string };
  t.same([parsed.level, parsed.msg, parsed.agent], ['info', 'agent: starting', 'json-agent'], 'level by name, msg, and the base fields');
  t.ok(!Number.isNaN(Date.parse(parsed.time)), 'an ISO time');
});
