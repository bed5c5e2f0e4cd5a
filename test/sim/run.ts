/**
 * `npm run sim -- --seeds N [--from S] [--verbose] [--faults a,b] [--without a,b] [--tcp-only] [--no-downlink]`: runs N seeds
 * of the whole-system simulator (agents on TCP, HTTP long-poll or a choice of both; `--tcp-only`: TCP, as before issue 11;
 * the downlink on, `--no-downlink`: off, as before issue 12), from a random base (printed) or from S, one line per failing
 * seed with the checker's message, the trace hash and the command that replays it. Exits 1 when
 * a checker failed.
 */
import { randomInt } from 'node:crypto';
import { faultKinds, parseFaultKinds, type FaultKind } from './faults.js';
import { bugClasses, classify } from './classify.js';
import type { DiskFaultsOn } from './context.js';
import { runSeed } from './world.js';

interface Args {
  seeds: number;
  from: number | null;
  verbose: boolean;
  faults: FaultKind[];
  /** stop after this many failures (0: never) */
  stopAfter: number;
  precreate: boolean;
  /** every agent on TCP, as the seeds found before issue 11 ran */
  tcpOnly: boolean;
  /** no downlink, as the seeds found before issue 12 ran */
  noDownlink: boolean;
  skipCheckers: string[];
  diskFaultsOn: DiskFaultsOn;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seeds: 100, from: null, verbose: false, faults: [...faultKinds], stopAfter: 0, precreate: false, tcpOnly: false, noDownlink: false, skipCheckers: [], diskFaultsOn: 'any' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--seeds') a.seeds = Number(value());
    else if (arg === '--from') a.from = Number(value());
    else if (arg === '--verbose') a.verbose = true;
    else if (arg === '--precreate') a.precreate = true;
    else if (arg === '--tcp-only') a.tcpOnly = true;
    else if (arg === '--no-downlink') a.noDownlink = true;
    else if (arg === '--skip-checker') a.skipCheckers.push(value());
    else if (arg === '--disk-faults-on') a.diskFaultsOn = value() as DiskFaultsOn;
    else if (arg === '--faults') a.faults = parseFaultKinds(value());
    else if (arg === '--without') {
      const out = new Set(parseFaultKinds(value()));
      a.faults = a.faults.filter((k) => !out.has(k));
    } else if (arg === '--stop-after') a.stopAfter = Number(value());
    else throw new Error(`unknown argument ${arg}; usage: npm run sim -- --seeds N [--from S] [--verbose] [--faults a,b] [--without a,b] [--stop-after K] [--tcp-only] [--no-downlink]`);
  }
  if (!Number.isInteger(a.seeds) || a.seeds < 1) throw new Error('--seeds must be a positive integer');
  if (a.from !== null && !(Number.isInteger(a.from) && a.from >= 0 && a.from <= 0xffffffff)) throw new Error('--from must be an integer from 0 to 4294967295');
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // The only randomness outside a seed: where a campaign starts.
  const base = args.from ?? randomInt(0, 0xffffffff - args.seeds);
  const faultsArg = args.faults.length === faultKinds.length ? '' : ` --faults ${args.faults.join(',') || "''"}`;
  console.log(`sim: ${args.seeds} seeds from ${base}${faultsArg ? ` (faults: ${args.faults.join(',')})` : ''}`);
  const started = Date.now();
  let failed = 0;
  let events = 0;
  const down = { enqueued: 0, handed: 0, repeatsExcused: 0, forgedResults: 0, lateMsMax: 0 };
  const byChecker = new Map<string, number>();
  const byClass = new Map<string, number[]>();
  for (let i = 0; i < args.seeds; i++) {
    const seed = (base + i) >>> 0;
    const r = await runSeed({ seed, longpoll: !args.tcpOnly, downlink: !args.noDownlink, faults: args.faults, verbose: args.verbose, precreateFiles: args.precreate, diskFaultsOn: args.diskFaultsOn, skipCheckers: args.skipCheckers });
    events += r.events;
    if (r.downlink) {
      for (const k of ['enqueued', 'handed', 'repeatsExcused', 'forgedResults'] as const) down[k] += r.downlink[k];
      down.lateMsMax = Math.max(down.lateMsMax, r.downlink.lateMsMax);
    }
    if (!r.ok) {
      failed++;
      const checker = r.violation!.checker;
      byChecker.set(checker, (byChecker.get(checker) ?? 0) + 1);
      const cls = classify(r) ?? 'unknown';
      byClass.set(cls, [...(byClass.get(cls) ?? []), seed]);
      if (!args.verbose) for (const line of r.tail.slice(-25)) console.log(`    ${line}`);
      console.log(`FAIL seed ${seed} [${cls}] ${r.violation!.message.split('\n')[0]} (hash ${r.hash}; faults ${r.faults.join(',') || 'none'})`);
      console.log(`  replay: npm run sim -- --from ${seed} --seeds 1 --verbose${faultsArg}${args.tcpOnly ? ' --tcp-only' : ''}${args.noDownlink ? ' --no-downlink' : ''}`);
      if (args.stopAfter > 0 && failed >= args.stopAfter) break;
    } else if (args.verbose || args.seeds === 1) {
      console.log(`ok seed ${seed} hash ${r.hash} (${r.events} events, ${r.appends} appends, ${r.resolved} resolved, ${(r.simMs / 1000).toFixed(1)} s simulated)`);
    }
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`sim: ${args.seeds} seeds from ${base}, ${failed} failed${failed ? ` (${[...byChecker].map(([c, n]) => `${c} ${n}`).join(', ')})` : ''}, ${events} events, ${secs} s`);
  if (!args.noDownlink) console.log(`  downlink: ${down.enqueued} messages queued, ${down.handed} handings to consumers (${down.repeatsExcused} repeats in the crash window), ${down.forgedResults} forged results; at most ${down.lateMsMax} ms past the gateway's expiry`);
  for (const [cls, seeds] of [...byClass].sort()) console.log(`  ${seeds.length} × ${bugClasses[cls as keyof typeof bugClasses] ?? cls}: seeds ${seeds.slice(0, 6).join(' ')}${seeds.length > 6 ? ' …' : ''}`);
  process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 2;
});
