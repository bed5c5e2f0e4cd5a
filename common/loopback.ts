import { isIP } from 'node:net';

/** `localhost`, 127.0.0.0/8, ::1 (also bracketed, or as an IPv4-mapped 127.x address). */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  if (isIP(h) === 4) return h.split('.')[0] === '127';
  if (isIP(h) !== 6) return false; // a name other than localhost may resolve anywhere
  const n = new URL(`http://[${h}]/`).hostname; // normalised: [::1], [::ffff:7f00:1]
  return n === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(n);
}
