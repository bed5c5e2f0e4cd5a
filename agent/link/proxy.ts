/**
 * Which forward proxy, if any, an HTTP(S) request of the long-poll transport goes through, from
 * the standard variables HTTPS_PROXY, HTTP_PROXY and NO_PROXY (upper or lower case). The
 * environment is passed in (main.ts hands over process.env), so the rules are tested without
 * touching the process. The proxying itself (an absolute-URI request for http:, a CONNECT tunnel
 * with TLS inside it for https:) is done by http-proxy-agent and https-proxy-agent, which are
 * node:http Agents: a request only needs `agent` set.
 *
 * The rules (curl's and Go's, where those two agree):
 * - an https: target uses https_proxy, else HTTPS_PROXY; an http: target http_proxy, else
 *   HTTP_PROXY. An empty variable counts as unset. HTTP_PROXY is never used for https: targets.
 *   ALL_PROXY is not read (it usually names a SOCKS proxy, which is not supported).
 * - a proxy value without a scheme is `http://` (a plain proxy, as curl assumes); `https://`
 *   means TLS to the proxy itself; any other scheme, or an unparsable value, is CONFIG_INVALID.
 *   User and password in the proxy URL are sent as Proxy-Authorization (basic).
 * - NO_PROXY (no_proxy first) is a list separated by commas or white space, compared without
 *   case. `*` matches every host. `example.com`, `.example.com` and `*.example.com` all match
 *   example.com and every name under it (not `badexample.com`). An IP address matches that
 *   address; `10.0.0.0/8` or `fd00::/8` match addresses in the block (names are not resolved:
 *   no IO here). `HOST:PORT` (`[v6]:PORT` for IPv6) matches only that port, where a URL without a
 *   port has its scheme's default (80, 443).
 * - loopback and `localhost` are proxied like any other host unless NO_PROXY names them (Go
 *   never proxies them; curl does, and tests need a gateway on 127.0.0.1 behind a proxy).
 * - targets other than http: and https: (the TCP tunnel's tcp:// and tls://) are always direct.
 */
import type { Agent, AgentOptions } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { ErrorCode, FerryError } from '../../protocol/errors.js';

/** The process environment or a test's stand-in; only the proxy variables are read. */
export type ProxyEnv = Readonly<Record<string, string | undefined>>;

/** What a request to the target needs: nothing, or an Agent that goes through the proxy. */
export type ProxyChoice =
  | { kind: 'direct' }
  | { kind: 'proxy'; proxyUrl: URL; agent: Agent };

const defaultPorts: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443 };

/** The value of `name` in lower case, else upper case; empty counts as unset. */
function envValue(env: ProxyEnv, name: string): { name: string; value: string } | undefined {
  for (const n of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[n]?.trim();
    if (value) return { name: n, value };
  }
  return undefined;
}

/** A URL's host without IPv6 brackets, lower case. */
function bareHost(host: string): string {
  return host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}

/** Splits a NO_PROXY entry into host (brackets removed) and optional port. */
function splitEntry(entry: string): { host: string; port?: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (v6) return v6[2] === undefined ? { host: v6[1]! } : { host: v6[1]!, port: Number(v6[2]) };
  // A bare IPv6 address (or block) has colons of its own and no port.
  if (isIP(entry.split('/')[0]!) === 6) return { host: entry };
  const hp = /^(.*):(\d+)$/.exec(entry);
  return hp ? { host: hp[1]!, port: Number(hp[2]) } : { host: entry };
}

/** Whether an IP literal `host` lies in the address or CIDR block `entry`. */
function ipMatches(entry: string, host: string): boolean {
  const family = isIP(host);
  if (family === 0) return false;
  const type = family === 6 ? 'ipv6' : 'ipv4';
  const [addr, bits] = entry.split('/');
  const entryFamily = isIP(addr!);
  if (entryFamily !== family) return false;
  const list = new BlockList();
  if (bits === undefined) list.addAddress(addr!, type);
  else {
    const prefix = Number(bits);
    if (!/^\d+$/.test(bits) || prefix > (family === 6 ? 128 : 32)) return false; // a malformed block matches nothing
    list.addSubnet(addr!, prefix, type);
  }
  return list.check(host, type);
}

/** Whether NO_PROXY's list `noProxy` exempts `host` (a URL's host) on `port`. */
export function noProxyMatches(noProxy: string, host: string, port: number): boolean {
  const target = bareHost(host);
  for (const raw of noProxy.toLowerCase().split(/[\s,]+/)) {
    if (raw === '') continue;
    if (raw === '*') return true;
    const entry = splitEntry(raw);
    if (entry.port !== undefined && entry.port !== port) continue;
    if (isIP(entry.host.split('/')[0]!) !== 0) {
      if (ipMatches(entry.host, target)) return true;
      continue;
    }
    const domain = entry.host.replace(/^\*?\./, '');
    if (domain !== '' && (target === domain || target.endsWith('.' + domain))) return true;
  }
  return false;
}

/** `value` with any user-info (`user:password@`) hidden: an error message may be logged. */
function withoutCredentials(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}***@`);
}

/** Parses a proxy variable's value; a value without a scheme is a plain http:// proxy. */
function parseProxyUrl(name: string, value: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `${name}: not a URL: ${JSON.stringify(withoutCredentials(value))}`, { cause: err });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `${name}: proxy scheme ${url.protocol} is not supported (use http:// or https://)`);
  }
  if (url.hostname === '') throw new FerryError(ErrorCode.CONFIG_INVALID, `${name}: the proxy URL has no host: ${JSON.stringify(withoutCredentials(value))}`);
  return url;
}

/** The proxy for `target` under `env`'s rules, or undefined for a direct request. Throws CONFIG_INVALID for a bad proxy value. */
export function proxyUrlFor(target: URL | string, env: ProxyEnv): URL | undefined {
  const url = typeof target === 'string' ? new URL(target) : target;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const proxy = envValue(env, url.protocol === 'https:' ? 'https_proxy' : 'http_proxy');
  if (proxy === undefined) return undefined;
  const noProxy = envValue(env, 'no_proxy');
  const port = url.port === '' ? defaultPorts[url.protocol]! : Number(url.port);
  if (noProxy !== undefined && noProxyMatches(noProxy.value, url.hostname, port)) return undefined;
  return parseProxyUrl(proxy.name, proxy.value);
}

/**
 * What a request to `target` needs under `env`: `{ kind: 'direct' }` (use your own Agent), or an
 * Agent that goes through the proxy. `agentOptions` go to that Agent. TLS options for the gateway
 * (ca, cert, key, servername) go on each request, as without a proxy: the Agent passes them to
 * the TLS handshake inside the tunnel.
 *
 * keepAlive defaults differ by scheme. https: true, so a long-poll session reuses one CONNECT
 * tunnel (only bytes to the proxy; the gateway decides how long it lives). http: false, because
 * proxies may close a plain client connection after each response without saying so (tinyproxy
 * 1.11 answers HTTP/1.1 with no `Connection: close` and then closes), and a request sent on such a
 * socket is lost (ECONNRESET): a new connection per request is the safe default.
 */
export function proxyFor(target: URL | string, env: ProxyEnv, agentOptions: AgentOptions = {}): ProxyChoice {
  const url = typeof target === 'string' ? new URL(target) : target;
  const proxyUrl = proxyUrlFor(url, env);
  if (proxyUrl === undefined) return { kind: 'direct' };
  const https = url.protocol === 'https:';
  const opts = { keepAlive: https, ...agentOptions };
  const agent = https ? new HttpsProxyAgent(proxyUrl, opts) : new HttpProxyAgent(proxyUrl, opts);
  return { kind: 'proxy', proxyUrl, agent };
}
