/**
 * deploy/systemd: both units pass `systemd-analyze verify` (with ExecStart pointed at this
 * checkout's ferry, so the binary exists), a broken copy does not, the hardening directives the
 * issue asks for are there, and the example configs the units read are valid configurations.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentConfigSchema } from '../../agent/config.js';
import { ferryBin } from '../../cli/proc.js';
import { closeGraceMs, shutdownTimeoutMsDefault } from '../../common/shutdown.js';
import { gatewayConfigSchema } from '../../gateway/config.js';
import { loadYamlFile } from '../../hw/yaml-file.js';

const deployDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'deploy', 'systemd');
const units = ['ferry-agent.service', 'ferry-gateway.service'] as const;

function verify(path: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', ['verify', '--man=no', path], { timeout: 30_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
}

/** The unit as written, with ExecStart running this checkout's built CLI through node. */
async function localCopy(dir: string, unit: string, edit: (text: string) => string = (x) => x): Promise<string> {
  const text = await readFile(join(deployDir, unit), 'utf8');
  const local = text.replace(/^ExecStart=\/usr\/local\/bin\/ferry /m, `ExecStart=${process.execPath} ${ferryBin} `);
  if (local === text) throw new Error(`${unit}: ExecStart is not /usr/local/bin/ferry`);
  const path = join(dir, unit);
  await writeFile(path, edit(local));
  return path;
}

/** Every value of each key in the [Service] section. */
async function serviceKeys(unit: string): Promise<Map<string, string[]>> {
  const text = await readFile(join(deployDir, unit), 'utf8');
  const section = text.split(/^\[Service\]$/m)[1]!.split(/^\[/m)[0]!;
  const keys = new Map<string, string[]>();
  for (const line of section.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
  }
  return keys;
}

t.test('systemd - both units pass systemd-analyze verify; a broken copy does not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-units-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const unit of units) {
    const r = await verify(await localCopy(dir, unit));
    t.equal(r.code, 0, `${unit}: exit status 0`);
    t.equal(r.stderr, '', `${unit}: no warning (${r.stderr.trim()})`);
  }
  const badDir = await mkdtemp(join(tmpdir(), 'ferry-units-bad-'));
  t.teardown(() => rm(badDir, { recursive: true, force: true }));
  const misspelt = await verify(await localCopy(badDir, 'ferry-agent.service', (x) => x.replace(/^ProtectSystem=/m, 'ProtectSystm=')));
  t.match(misspelt.stderr, /Unknown key 'ProtectSystm'/, 'a misspelt directive is reported');
  const badValue = await verify(await localCopy(badDir, 'ferry-gateway.service', (x) => x.replace(/^ProtectSystem=strict/m, 'ProtectSystem=very')));
  t.match(badValue.stderr, /protect system value/i, 'a bad value is reported');
  const noBinary = await verify(await localCopy(badDir, 'ferry-agent.service', (x) => x.replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/ferry')));
  t.not(noBinary.code, 0, 'an ExecStart binary that does not exist fails the verification');
});

t.test('systemd - the units carry the hardening, restart and stop settings', async (t) => {
  for (const unit of units) {
    const k = await serviceKeys(unit);
    const one = (key: string): string | undefined => k.get(key)?.at(-1);
    const role = unit === 'ferry-agent.service' ? 'agent' : 'gateway';
    t.equal(one('ProtectSystem'), 'strict', `${unit}: ProtectSystem=strict`);
    t.equal(one('NoNewPrivileges'), 'yes', `${unit}: NoNewPrivileges`);
    t.equal(one('PrivateTmp'), 'yes', `${unit}: PrivateTmp`);
    t.equal(one('Restart'), 'always', `${unit}: Restart=always`);
    t.ok(one('RestartSec'), `${unit}: RestartSec`);
    t.equal(one('StateDirectory'), `ferry-${role}`, `${unit}: the data dir is its StateDirectory`);
    t.equal(k.get('ReadWritePaths'), undefined, `${unit}: no other writable path`);
    t.match(one('ExecStart'), new RegExp(` --data-dir /var/lib/ferry-${role}( |$)`), `${unit}: ExecStart passes the StateDirectory as --data-dir`);
    t.match(one('ExecStart'), new RegExp(` --config /etc/ferry/${role}\\.yaml( |$)`), `${unit}: the config lives in /etc/ferry`);
    t.ok(one('User') && one('User') !== 'root', `${unit}: runs as its own user`);
    const stopS = Number(/^(\d+)s$/.exec(one('TimeoutStopSec') ?? '')?.[1]);
    t.ok(stopS * 1000 > shutdownTimeoutMsDefault + closeGraceMs, `${unit}: TimeoutStopSec (${stopS} s) exceeds shutdownTimeoutMs + the close grace`);
  }
  const agent = await serviceKeys('ferry-agent.service');
  t.match(agent.get('SupplementaryGroups')?.join(' '), /\bdialout\b/, 'the agent may open serial devices (dialout)');
  t.not(agent.get('PrivateDevices')?.at(-1), 'yes', 'the agent does not hide /dev');
  t.match(agent.get('DeviceAllow')?.join(' '), /char-ttyUSB rw/, 'the agent is let through to USB serial devices');
  t.equal(agent.get('RuntimeDirectory')?.at(-1), 'ferry-agent', 'the agent has a runtime directory for its socket');
  const gateway = await serviceKeys('ferry-gateway.service');
  t.equal(gateway.get('ExecReload')?.at(-1), '/bin/kill -HUP $MAINPID', 'systemctl reload sends the gateway SIGHUP');
});

t.test('systemd - the example configs for /etc/ferry are valid and use the units\' directories', async (t) => {
  const agent = loadYamlFile(join(deployDir, 'agent.yaml'), agentConfigSchema);
  t.equal(agent.dataDir, '/var/lib/ferry-agent', 'agent dataDir is the StateDirectory');
  t.equal(agent.socket, '/run/ferry-agent/agent.sock', 'agent socket is in the RuntimeDirectory');
  const gateway = loadYamlFile(join(deployDir, 'gateway.yaml'), gatewayConfigSchema);
  t.equal(gateway.dataDir, '/var/lib/ferry-gateway', 'gateway dataDir is the StateDirectory');
  for (const r of gateway.routes) if (r.handler === 'file') t.match(r.path, /^\/var\/lib\/ferry-gateway\//, `file route ${r.match} writes under the data dir (ProtectSystem=strict)`);
});
