/**
 * MQTT topic filters against the gateway's own uplink: the mqtt handler must never publish where
 * the gateway's downlink subscription (`downlink.mqtt`, e.g. `ferry/down/+/#`) listens, or an
 * agent's packet comes back as a downlink message for another agent, past application tokens
 * (agent `down` with target `victim/cmd/reboot` under `ferry/{agent}/{target}`). No IO.
 */

/** Whether `topic` (a topic name, no wildcards) matches `filter` (MQTT 3.1.1 §4.7: `+` one level, a final `#` any rest, the parent included). */
export function topicMatchesFilter(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A template level (`{agent}` one level of anything, the rest literal) as a whole-level pattern; `open` lets it run on. */
function levelPattern(level: string, open: boolean): RegExp {
  const parts = level.split('{agent}').map(escapeRegExp);
  return new RegExp(`^${parts.join('[^/]+')}${open ? '.*' : ''}$`);
}

/**
 * Whether some agent ID and target can make `template` (`{agent}`: one level; `{target}`: one or
 * more levels of anything) render a topic that `filter` matches. Errs towards yes: it is used to
 * warn at start, the handler refuses each such topic anyway (topicMatchesFilter).
 */
export function templateCanReach(template: string, filter: string): boolean {
  const t = template.split('/');
  const f = filter.split('/');
  for (let i = 0; i < f.length; i++) {
    const fl = f[i]!;
    if (fl === '#') return true;
    const tl = t[i];
    if (tl === undefined) return false;
    const at = tl.indexOf('{target}');
    if (at >= 0) {
      // The target may hold `/`: from here on the template can supply any levels the filter wants.
      if (fl === '+') return true;
      return levelPattern(tl.slice(0, at), true).test(fl);
    }
    if (fl !== '+' && !levelPattern(tl, false).test(fl)) return false;
  }
  return t.length === f.length;
}

/** A broker URL as `scheme://host:port` (no credentials, the scheme's default port filled in), to tell whether two routes name one broker. */
export function brokerOf(url: string): string {
  try {
    const u = new URL(url);
    const port = u.port !== '' ? u.port : u.protocol === 'mqtts:' ? '8883' : '1883';
    return `${u.protocol}//${u.hostname.toLowerCase()}:${port}`;
  } catch {
    return url;
  }
}

/**
 * The start-up warnings for mqtt routes whose topic template can reach the downlink subscription's
 * filter on the same broker URL (e.g. `ferry/{agent}/{target}` and `ferry/down/+/#`: an agent named
 * `down`). A warning, not a refusal: the defaults themselves overlap so, and the handler refuses
 * each such packet (HANDLER_REJECTED) whatever the configuration.
 */
export function uplinkReachesDownlink(routes: readonly { index: number; url: string; topic: string }[], downlink: { url: string; filter: string }): string[] {
  const broker = brokerOf(downlink.url);
  return routes
    .filter((r) => brokerOf(r.url) === broker && templateCanReach(r.topic, downlink.filter))
    .map((r) => `gateway: routes[${r.index}].topic "${r.topic}" can render topics under the downlink subscription "${downlink.filter}" on the same broker; such packets are refused (HANDLER_REJECTED) so that no agent's uplink becomes a downlink message, but a topic template apart from downlink.mqtt.topic (e.g. ferry/up/{agent}/{target}) says so plainly`);
}
