/**
 * agent/link/proxy.ts: which proxy a long-poll request goes through, from an env object.
 * Pure rules; the integration test through a real tinyproxy is test/integration/proxy-helper.test.ts.
 */
import t from 'tap';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { noProxyMatches, proxyFor, proxyUrlFor, type ProxyEnv } from '../../agent/link/proxy.js';
import { ErrorCode, isFerryError } from '../../protocol/errors.js';

const P = 'http://proxy.example:3128/';
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
const via = (target: string, env: ProxyEnv): string | undefined => proxyUrlFor(target, env)?.href;

t.test('proxy - an https: target uses HTTPS_PROXY, an http: target HTTP_PROXY, never the other', async (t) => {
  t.equal(via('https://gw:7443/lp', { HTTPS_PROXY: P }), P);
  t.equal(via('http://gw:7080/lp', { HTTP_PROXY: P }), P);
  t.equal(via('https://gw:7443/lp', { HTTP_PROXY: P }), undefined, 'HTTP_PROXY is not used for https:');
  t.equal(via('http://gw:7080/lp', { HTTPS_PROXY: P }), undefined, 'HTTPS_PROXY is not used for http:');
  t.equal(via('https://gw:7443/lp', {}), undefined, 'no variables: direct');
  t.equal(via('https://gw/lp', { ALL_PROXY: P, all_proxy: P }), undefined, 'ALL_PROXY is not read');
  t.equal(via('tls://gw:7800', { HTTPS_PROXY: P, HTTP_PROXY: P, TLS_PROXY: P }), undefined, 'the TCP tunnel is always direct');
});

t.test('proxy - lower case wins over upper case; an empty value counts as unset', async (t) => {
  const lower = 'http://lower:1/';
  const upper = 'http://upper:2/';
  t.equal(via('https://gw/', { https_proxy: lower }), lower, 'lower case alone');
  t.equal(via('https://gw/', { https_proxy: lower, HTTPS_PROXY: upper }), lower, 'both: lower case');
  t.equal(via('https://gw/', { https_proxy: '', HTTPS_PROXY: upper }), upper, 'empty lower case: upper case');
  t.equal(via('http://gw/', { http_proxy: '  ', HTTP_PROXY: upper }), upper, 'blank lower case: upper case');
  t.equal(via('https://gw/', { HTTPS_PROXY: '' }), undefined, 'empty: direct');
  t.equal(via('https://gw/', { HTTPS_PROXY: upper, NO_PROXY: 'other', no_proxy: 'gw' }), undefined, 'no_proxy is read first');
  t.equal(via('https://gw/', { HTTPS_PROXY: upper, NO_PROXY: 'gw', no_proxy: '' }), undefined, 'empty no_proxy: NO_PROXY');
});

t.test('proxy - proxy values: scheme defaults to http, https is kept, credentials kept, others refused', async (t) => {
  t.equal(via('https://gw/', { HTTPS_PROXY: 'proxy.example:3128' }), 'http://proxy.example:3128/', 'no scheme: a plain http proxy');
  t.equal(via('https://gw/', { HTTPS_PROXY: 'https://proxy.example:8443' }), 'https://proxy.example:8443/', 'TLS to the proxy');
  t.equal(via('https://gw/', { HTTPS_PROXY: 'http://u:p%40ss@proxy.example:3128' }), 'http://u:p%40ss@proxy.example:3128/', 'user and password stay');
  for (const [value, why] of [['socks5://proxy.example:1080', /socks5: is not supported/], ['http://', /not a URL/], ['http://[::1', /not a URL/]] as const) {
    const err = thrown(() => proxyUrlFor('https://gw/', { HTTPS_PROXY: value }));
    t.ok(isFerryError(err, ErrorCode.CONFIG_INVALID) && why.test(err.message) && err.message.startsWith('HTTPS_PROXY:'), `${value}: CONFIG_INVALID naming the variable (${String(err)})`);
  }
  t.throws(() => proxyUrlFor('http://gw/', { http_proxy: 'ftp://x' }), /^http_proxy: /, 'the message names the variable as spelled');
  t.equal(via('https://gw/', { HTTPS_PROXY: 'socks5://x:1', NO_PROXY: 'gw' }), undefined, 'a bad proxy does not matter for a host NO_PROXY exempts');
});

t.test('proxy - NO_PROXY: *, names and their subdomains, not look-alikes', async (t) => {
  const m = (list: string, host: string, port = 443) => noProxyMatches(list, host, port);
  t.ok(m('*', 'anything.example'), '* alone');
  t.ok(m('a.example, *', 'anything.example'), '* among others');
  t.ok(m('example.com', 'example.com'), 'exact name');
  t.ok(m('example.com', 'gw.example.com'), 'a plain name covers its subdomains');
  t.ok(m('.example.com', 'gw.example.com') && m('.example.com', 'example.com'), 'leading dot: the domain and below');
  t.ok(m('*.example.com', 'a.b.example.com') && m('*.example.com', 'example.com'), 'leading *.: the domain and below');
  t.notOk(m('example.com', 'badexample.com'), 'not a look-alike suffix');
  t.notOk(m('gw.example.com', 'example.com'), 'not the parent');
  t.ok(m('EXAMPLE.com', 'gw.Example.COM'), 'case does not matter');
  t.ok(m('  a.example\tb.example\n,,c.example ', 'b.example'), 'commas and white space separate, empty entries skipped');
  t.notOk(m('', 'gw'), 'an empty list exempts nothing');
  t.notOk(m(',', 'gw'), 'a list of empty entries exempts nothing');
  t.notOk(m('.', 'gw') || m('*.', 'gw'), 'a bare dot exempts nothing');
});

t.test('proxy - NO_PROXY: ports must match, with the scheme default port', async (t) => {
  const env = { HTTPS_PROXY: P, HTTP_PROXY: P };
  t.equal(via('https://gw.example:7443/', { ...env, NO_PROXY: 'gw.example:7443' }), undefined, 'same port: direct');
  t.equal(via('https://gw.example:8443/', { ...env, NO_PROXY: 'gw.example:7443' }), P, 'other port: proxied');
  t.equal(via('https://gw.example/', { ...env, NO_PROXY: 'gw.example:443' }), undefined, 'https default port 443');
  t.equal(via('http://gw.example/', { ...env, NO_PROXY: 'gw.example:80' }), undefined, 'http default port 80');
  t.equal(via('http://gw.example/', { ...env, NO_PROXY: 'gw.example:443' }), P, 'http is not on 443');
  t.equal(via('https://gw.example:7443/', { ...env, NO_PROXY: 'gw.example' }), undefined, 'no port in the entry: any port');
});

t.test('proxy - NO_PROXY: IP addresses and CIDR blocks, v4 and v6, never names resolved', async (t) => {
  const m = (list: string, host: string, port = 443) => noProxyMatches(list, host, port);
  t.ok(m('127.0.0.1', '127.0.0.1'), 'an IPv4 address');
  t.notOk(m('127.0.0.1', '127.0.0.2'), 'another IPv4 address');
  t.ok(m('10.0.0.0/8', '10.20.30.40'), 'inside an IPv4 block');
  t.notOk(m('10.0.0.0/8', '11.0.0.1'), 'outside an IPv4 block');
  t.ok(m('::1', '[::1]'), 'an IPv6 address against a bracketed URL host');
  t.ok(m('[::1]:7443', '[::1]', 7443) && !m('[::1]:7443', '[::1]', 7444), 'a bracketed IPv6 entry with a port');
  t.ok(m('fd00::/8', '[fd12::5]'), 'inside an IPv6 block');
  t.notOk(m('fd00::/8', '[fe80::1]'), 'outside an IPv6 block');
  t.notOk(m('10.0.0.0/8', '[::ffff:a00:1]'), 'families are compared apart (an IPv4-mapped IPv6 address is IPv6)');
  t.notOk(m('127.0.0.1', 'localhost'), 'a name is not resolved to match an address');
  t.notOk(m('10.0.0.0/99', '10.0.0.1') || m('10.0.0.0/x', '10.0.0.1'), 'a malformed block matches nothing');
  t.equal(via('http://127.0.0.1:8080/', { HTTP_PROXY: P, NO_PROXY: '127.0.0.0/8:8080' }), undefined, 'a block with a port');
  t.equal(via('http://127.0.0.1:8080/', { HTTP_PROXY: P }), P, 'loopback is proxied unless NO_PROXY names it');
});

t.test('proxy - proxyFor returns direct or an Agent of the right kind, keep-alive by default', async (t) => {
  t.same(proxyFor('https://gw/', {}), { kind: 'direct' });
  t.same(proxyFor('https://gw/', { HTTPS_PROXY: P, NO_PROXY: 'gw' }), { kind: 'direct' });
  const s = proxyFor('https://gw:7443/lp', { HTTPS_PROXY: P });
  t.equal(s.kind, 'proxy');
  if (s.kind !== 'proxy') return;
  t.ok(s.agent instanceof HttpsProxyAgent, 'https: a CONNECT agent');
  t.equal(s.proxyUrl.href, P);
  t.equal((s.agent as unknown as { keepAlive: boolean }).keepAlive, true, 'keep-alive on by default');
  const h = proxyFor(new URL('http://gw:7080/lp'), { http_proxy: P });
  t.ok(h.kind === 'proxy' && h.agent instanceof HttpProxyAgent, 'http: an absolute-URI agent');
  if (h.kind === 'proxy') t.equal((h.agent as unknown as { keepAlive: boolean }).keepAlive, false, 'http: no keep-alive by default');
  const o = proxyFor('https://gw:7443/lp', { HTTPS_PROXY: P }, { keepAlive: false, maxSockets: 2 });
  if (o.kind === 'proxy') {
    t.equal((o.agent as unknown as { keepAlive: boolean }).keepAlive, false, 'agent options are passed on and win');
    t.equal(o.agent.maxSockets, 2);
  } else t.fail('expected a proxy');
  for (const c of [s, h, o]) if (c.kind === 'proxy') c.agent.destroy();
});

t.test('proxy - a proxy value that does not parse is refused without its password in the message (the message is logged)', async (t) => {
  for (const value of ['http://user:s3cret@proxy.example:99999', 'user:s3cret@proxy.example:99999', 'http://user:s3cret@']) {
    let message = '';
    try {
      proxyUrlFor('https://gw.example:7443', { HTTPS_PROXY: value });
    } catch (err) {
      message = (err as Error).message;
    }
    t.match(message, /not a URL|no host/, `${value.replace('s3cret', '…')} refused`);
    t.notMatch(message, /s3cret/, 'the password is not in the message');
  }
});
