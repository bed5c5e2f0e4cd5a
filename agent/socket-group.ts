import { ErrorCode, FerryError } from '../protocol/errors.js';

/**
 * The group ID for the local API socket's `socketGroup`: a number as it is, a name looked up in
 * the text of /etc/group (read only then) (`name:x:gid:members` lines; Node has no getgrnam). Unknown names are
 * CONFIG_INVALID at start, not a socket quietly left in the agent's own group.
 */
export function groupId(spec: string | number, readEtcGroup: () => string): number {
  if (typeof spec === 'number') return spec;
  if (/^\d+$/.test(spec)) return Number(spec);
  for (const line of readEtcGroup().split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === spec && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new FerryError(ErrorCode.CONFIG_INVALID, `socketGroup: no group named ${JSON.stringify(spec)} in /etc/group`);
}
