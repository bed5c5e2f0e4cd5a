/**
 * A private network namespace for firewall tests: `ip netns add ferry-<pid>-<random>`, loopback
 * up, processes run inside by `ip netns exec`, and an nftables table of its own that drops TCP to
 * chosen ports and passes others. Nothing outside the namespace changes. Needs root (and the
 * Debian packages iproute2 and nftables: scripts/bootstrap.sh test installs them).
 *
 * The name carries the creating process's PID so that leftovers (a test killed before its
 * teardown) can be found with `ip netns list | grep ^ferry-` and removed by
 * removeLeftoverNamespaces() once that process is gone.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export const netnsPrefix = 'ferry-';
const stopTimeoutMs = 3000;
const commandTimeoutMs = 10_000;
const tableName = 'ferry_test';

export interface FirewallRules {
  /** TCP destination ports whose packets are dropped (or refused, see `action`). */
  blockTcpPorts: readonly number[];
  /** TCP destination ports explicitly passed (everything not blocked passes anyway: policy accept). */
  passTcpPorts?: readonly number[];
  /**
   * `drop` (default): packets vanish; a connect gets no answer and times out (the kernel keeps
   * resending the SYN for about two minutes, so the client's own time-out decides), and an open
   * connection on that port goes silent. `reject`: a TCP reset comes back; a connect fails at
   * once with ECONNREFUSED, and an open connection is reset at its next packet.
   */
  action?: 'drop' | 'reject';
  /** Only new connections (ct state new) are blocked; open ones carry on. Default false. */
  newConnectionsOnly?: boolean;
}

export interface NetNs {
  /** `ferry-<pid>-<hex>` */
  name: string;
  /** Spawns `cmd args` inside the namespace; the child is killed by delete(). */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Runs `cmd args` inside the namespace to its end; rejects on a non-zero exit with its stderr. */
  run(cmd: string, args: readonly string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  /** Replaces the namespace's firewall with `rules` in one nft transaction. */
  firewall(rules: FirewallRules): Promise<void>;
  /** Removes every rule this helper added (the namespace stays). */
  clearFirewall(): Promise<void>;
  /** The namespace's nft ruleset, as `nft list ruleset` prints it. */
  ruleset(): Promise<string>;
  /** Kills what runs inside (by PID), then deletes the namespace. Idempotent. */
  delete(): Promise<void>;
}

function findBin(name: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    const file = join(dir, name);
    try {
      accessSync(file, fsConstants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  const pkg = name === 'nft' ? 'nftables' : 'iproute2';
  throw new Error(`netns: ${name} not found: install it with \`apt-get install -y ${pkg}\` (scripts/bootstrap.sh test does)`);
}

/** Throws a clear error unless this process is root (network namespaces and nftables need it). */
export function requireRoot(): void {
  const uid = process.getuid?.();
  if (uid !== 0) throw new Error(`netns: network namespace tests need root (this process runs as uid ${uid ?? 'unknown'}); run them as root, e.g. in CI or with sudo`);
}

function exec(file: string, args: readonly string[], timeoutMs = commandTimeoutMs, input?: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The nft script that replaces our table: accepts first, then blocks, policy accept. */
export function firewallScript(rules: FirewallRules): string {
  const ports = (list: readonly number[]) => {
    for (const p of list) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`netns: not a TCP port: ${p}`);
    return `{ ${list.join(', ')} }`;
  };
  const verdict = rules.action === 'reject' ? 'reject with tcp reset' : 'drop';
  const state = rules.newConnectionsOnly ? 'ct state new ' : '';
  const lines = [
    `table inet ${tableName} {}`, // so that the delete below never fails on a first call
    `delete table inet ${tableName}`,
    `table inet ${tableName} {`,
    // Output sees every packet a process in the namespace sends, loopback included.
    '  chain output {',
    '    type filter hook output priority 0; policy accept;',
    ...((rules.passTcpPorts?.length ?? 0) > 0 ? [`    tcp dport ${ports(rules.passTcpPorts!)} accept`] : []),
    ...(rules.blockTcpPorts.length > 0 ? [`    ${state}tcp dport ${ports(rules.blockTcpPorts)} ${verdict}`] : []),
    '  }',
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** Creates a namespace with its loopback up. Call `delete()` in t.teardown; a process exit deletes it as a last resort. */
export async function createNetns(): Promise<NetNs> {
  requireRoot();
  const ip = findBin('ip');
  const nft = findBin('nft');
  const name = `${netnsPrefix}${process.pid}-${randomBytes(4).toString('hex')}`;
  await exec(ip, ['netns', 'add', name]);
  const children = new Set<ChildProcess>();
  const lastResort = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    try {
      execFileSync(ip, ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  };
  process.once('exit', lastResort);

  let deleting: Promise<void> | undefined;
  const ns: NetNs = {
    name,
    spawn(cmd, args, opts = {}) {
      const child = spawn(ip, ['netns', 'exec', name, cmd, ...args], opts);
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    run: (cmd, args, timeoutMs) => exec(ip, ['netns', 'exec', name, cmd, ...args], timeoutMs),
    firewall: async (rules) => void (await exec(ip, ['netns', 'exec', name, nft, '-f', '-'], commandTimeoutMs, firewallScript(rules))),
    clearFirewall: async () => {
      const script = `table inet ${tableName} {}\ndelete table inet ${tableName}\n`;
      await exec(ip, ['netns', 'exec', name, nft, '-f', '-'], commandTimeoutMs, script);
    },
    ruleset: async () => (await exec(ip, ['netns', 'exec', name, nft, 'list', 'ruleset'])).stdout,
    delete() {
      deleting ??= (async () => {
        await Promise.all([...children].map((c) => stopChild(c)));
        // Anything still inside was started by our children: end it by PID, or the namespace lives on.
        const left = await exec(ip, ['netns', 'pids', name]).catch(() => ({ stdout: '' }));
        for (const pid of left.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await exec(ip, ['netns', 'del', name]).catch(() => undefined);
        process.removeListener('exit', lastResort);
      })();
      return deleting;
    },
  };
  try {
    await exec(ip, ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await ns.delete();
    throw err;
  }
  return ns;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Deletes namespaces named `ferry-<pid>-…` whose creating process is gone (left by a test that was
 * killed). Returns the names removed. Namespaces of live processes (other tests running now) stay.
 */
export async function removeLeftoverNamespaces(): Promise<string[]> {
  requireRoot();
  const ip = findBin('ip');
  const { stdout } = await exec(ip, ['netns', 'list']);
  const removed: string[] = [];
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${netnsPrefix}(\\d+)-[0-9a-f]+$`).exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    await exec(ip, ['netns', 'del', name]).catch(() => undefined);
    removed.push(name);
  }
  return removed;
}
