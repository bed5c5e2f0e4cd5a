import t from 'tap';
import { createLog } from '../../common/log.js';
import { redactUrl, redactUrlsIn, scrubbingLog, secretScrubber } from '../../common/redact.js';

t.test('redact - a URL keeps scheme, host and port; userinfo, path, query and fragment go', async (t) => {
  const cases: [string, string][] = [
    ['mqtt://ferry:s3cretPW@127.0.0.1:1883', 'mqtt://127.0.0.1:1883'],
    ['mqtt://ferry:s3cretPW@broker.example', 'mqtt://broker.example:1883'],
    ['mqtts://u@broker.example', 'mqtts://broker.example:8883'],
    ['http://127.0.0.1:8080/hooks/T000/B000/XXXXSECRET', 'http://127.0.0.1:8080/…'],
    ['https://hooks.example/x?token=abc#frag', 'https://hooks.example:443/…'],
    ['https://hooks.example/', 'https://hooks.example:443'],
    ['ws://user:pw@[::1]:9001/mqtt', 'ws://[::1]:9001/…'],
    ['http://h.example:81/{agent}/{target}', 'http://h.example:81/…'],
  ];
  for (const [url, want] of cases) t.equal(redactUrl(url), want, url.replace(/s3cretPW/, '…'));
  t.equal(redactUrl('not a url s3cretPW'), '(not a URL)', 'text that is not a URL is not echoed');
  t.equal(redactUrl(new URL('http://a:b@h.example:8/p')), 'http://h.example:8/…', 'a URL object too');
});

t.test('redact - URLs inside text are redacted, the rest stays', async (t) => {
  t.equal(redactUrlsIn('connect to mqtt://ferry:s3cretPW@127.0.0.1:1883 failed: ECONNREFUSED 127.0.0.1:1883'),
    'connect to mqtt://127.0.0.1:1883 failed: ECONNREFUSED 127.0.0.1:1883');
  t.equal(redactUrlsIn('POST "http://h:1/hooks/SECRET?x=1" answered 400'), 'POST "http://h:1/…" answered 400');
  t.equal(redactUrlsIn('no address here'), 'no address here');
});

t.test('redact - secretScrubber takes known secrets out, longest first; short ones are left', async (t) => {
  const scrub = secretScrubber(['s3cretPW', 's3cretPW-longer', 'ab', 'Bearer tok-123456']);
  t.equal(scrub('pw s3cretPW-longer and s3cretPW; ab stays'), 'pw *** and ***; ab stays');
  t.equal(scrub('header Bearer tok-123456 at http://u:p@h:1/x'), 'header *** at http://h:1/…');
});

t.test('redact - scrubbingLog scrubs the message and every string in the fields, errors included', async (t) => {
  const lines: string[] = [];
  const log = scrubbingLog(createLog({ level: 'debug', write: (l) => lines.push(l) }), secretScrubber(['s3cretPW']));
  log.debug('at mqtt://ferry:s3cretPW@h:1', { url: 'mqtt://ferry:s3cretPW@h:1', nested: { list: ['pw s3cretPW'] }, n: 3 });
  log.child({ url: 'http://h:2/hooks/TOKEN' }).error('failed', { err: new Error('s3cretPW rejected') });
  const text = lines.join('');
  t.notMatch(text, /s3cretPW|TOKEN|hooks/, 'no secret in any line');
  t.match(JSON.parse(lines[0]!), { msg: 'at mqtt://h:1', url: 'mqtt://h:1', nested: { list: ['pw ***'] }, n: 3 });
  t.match(JSON.parse(lines[1]!), { msg: 'failed', url: 'http://h:2/…', err: { message: '*** rejected' } });
});
