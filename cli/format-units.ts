/** Numbers for people: sizes in binary units, durations like 3m12s. */

const units = ['KiB', 'MiB', 'GiB', 'TiB'];

/** 512 B, 3.4 KiB, 12 MiB: one decimal under 10, none above. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** 850ms, 42s, 3m12s, 2h05m, 3d04h: the two largest units, the smaller one padded. */
export function formatAge(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

/** 2.5/s, 0/s, 1234/s. */
export function formatRate(perSecond: number): string {
  return `${perSecond === 0 ? '0' : perSecond < 10 ? perSecond.toFixed(1) : Math.round(perSecond)}/s`;
}
