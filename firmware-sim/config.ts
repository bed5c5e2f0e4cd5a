import { z } from 'zod';

/** Where the agent-side link lives unless configured otherwise. */
export const DEFAULT_LINK = '/tmp/ferry-sim/ttyFERRY0';

/**
 * A link path must survive socat's address syntax (`pty,link=<path>`), where `,` `:` `!` quotes,
 * brackets and whitespace are special; so only plain path characters are allowed.
 */
export const LINK_PATH_PATTERN = /^\/?[A-Za-z0-9_.+@-]+(\/[A-Za-z0-9_.+@-]+)*$/;

export const WaveformKind = { sine: 'sine', square: 'square', sawtooth: 'sawtooth' } as const;
export type WaveformKind = (typeof WaveformKind)[keyof typeof WaveformKind];

const valueAbsMax = 1e9;

export const waveformSchema = z.strictObject({
  /** Shape of one period. */
  kind: z.enum([WaveformKind.sine, WaveformKind.square, WaveformKind.sawtooth]).default('sine'),
  /** Centre value. */
  baseline: z.number().min(-valueAbsMax).max(valueAbsMax).default(20),
  /** Peak deviation from the baseline. */
  amplitude: z.number().min(0).max(valueAbsMax).default(5),
  /** Length of one period in ms. */
  periodMs: z.number().min(1).max(1e10).default(20_000),
  /** Uniform noise added to every sample, in [-noise, +noise]. */
  noise: z.number().min(0).max(valueAbsMax).default(0),
});
export type Waveform = z.output<typeof waveformSchema>;

/**
 * Configuration of the simulated microcontroller. The defaults give a 10 Hz `t=…` reading whose
 * sine swings 15..25 with a 20 s period, so a threshold of 22 is crossed up and down every period.
 */
export const simConfigSchema = z.strictObject({
  /** Path of the symlink to the pseudo-terminal the agent opens. */
  link: z
    .string()
    .regex(LINK_PATH_PATTERN, 'a path of letters, digits and _ . + @ - separated by /')
    .default(DEFAULT_LINK),
  /** Readings per second. */
  rateHz: z.number().positive().max(10_000).default(10),
  /** The key of each `key=value` line. */
  key: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/, 'a name of at most 32 letters, digits, _ . - starting with a letter or _')
    .default('t'),
  waveform: waveformSchema.prefault({}),
  /** With it, each reading carries `alarm=1` while its value is above it, `alarm=0` otherwise (also set by the `threshold=` command). */
  threshold: z.number().min(-valueAbsMax).max(valueAbsMax).optional(),
  /** Digits after the decimal point in each reading. */
  decimals: z.number().int().min(0).max(6).default(2),
  /** Stop by itself after this many ms (runs until stopped when absent). */
  durationMs: z.number().positive().optional(),
});
export type SimConfig = z.output<typeof simConfigSchema>;
/** What a config file or caller may give: every field optional. */
export type SimConfigInput = z.input<typeof simConfigSchema>;
