/** The API's request reading without IO: routes, query, bearer tokens, bodies (gateway/downlink/api-request.ts). */
import t from 'tap';
import { bearerToken, isJsonContentType, matchRoute, parseMessageBody } from '../../gateway/downlink/api-request.js';
import { ErrorCode } from '../../protocol/errors.js';

const limits = { messageBytesMax: 100, dataDepthMax: 4 };
const body = (v: unknown): Uint8Array => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

t.test('api request - routes', async (t) => {
  t.same(matchRoute('POST', '/v1/agents/pi-1/messages'), { route: { op: 'post', agent: 'pi-1' } });
  t.same(matchRoute('GET', '/v1/agents/pi-1/messages/abc_D-9'), { route: { op: 'get', agent: 'pi-1', id: 'abc_D-9' } });
  t.same(matchRoute('GET', '/v1/agents/pi-1/messages'), { route: { op: 'list', agent: 'pi-1', limit: 100 } });
  t.same(matchRoute('GET', '/v1/agents/pi-1/messages?state=acked&limit=5'), { route: { op: 'list', agent: 'pi-1', state: 'acked', limit: 5 } });
  t.same(matchRoute('GET', '/v1/agents/pi%3A1/messages'), { route: { op: 'list', agent: 'pi:1', limit: 100 } }, 'percent-decoded');
  for (const url of ['/', '/v1/agents', '/v1/agents//messages', '/v1/agents/pi-1', '/v1/agents/pi-1/messages/', '/v1/agents/pi-1/messages/a/b', '/v2/agents/pi-1/messages', '//v1/agents/pi-1/messages', '/v1/agents/%zz/messages']) {
    const r = matchRoute('GET', url);
    t.match(r, { status: 404, code: ErrorCode.API_NOT_FOUND }, `${url}: 404`);
  }
  t.match(matchRoute('DELETE', '/v1/agents/pi-1/messages'), { status: 405, code: ErrorCode.API_METHOD_NOT_ALLOWED, allow: 'GET, POST' });
  t.match(matchRoute('POST', '/v1/agents/pi-1/messages/x'), { status: 405, allow: 'GET' });
});

t.test('api request - query parameters: unknown, repeated, bad state or limit are 400', async (t) => {
  const bad: [string, string, RegExp][] = [
    ['GET', '/v1/agents/a/messages?state=lost', /state: one of queued, delivered, acked, rejected, expired, dropped/],
    ['GET', '/v1/agents/a/messages?limit=0', /limit: a whole number from 1 to 1000/],
    ['GET', '/v1/agents/a/messages?limit=1001', /limit/],
    ['GET', '/v1/agents/a/messages?limit=2.5', /limit/],
    ['GET', '/v1/agents/a/messages?limit=', /limit/],
    ['GET', '/v1/agents/a/messages?sort=asc', /'sort' is not known here \(known: state, limit\)/],
    ['GET', '/v1/agents/a/messages?state=acked&state=queued', /more than once/],
    ['GET', '/v1/agents/a/messages/x?state=acked', /'state' is not known here/],
    ['POST', '/v1/agents/a/messages?ttl=5', /'ttl' is not known here/],
  ];
  for (const [method, url, message] of bad) t.match(matchRoute(method, url), { status: 400, code: ErrorCode.API_BODY_INVALID, message }, url);
});

t.test('api request - bearer tokens and content types', async (t) => {
  t.equal(bearerToken('Bearer abc-DEF_123'), 'abc-DEF_123');
  t.equal(bearerToken('bearer   abc'), 'abc', 'scheme is case-insensitive');
  for (const h of [undefined, '', 'Basic dXNlcjpwdw==', 'Bearer', 'Bearer a b', 'Bearer ' + 'x'.repeat(513), ['Bearer a', 'Bearer b']]) {
    t.equal(bearerToken(h as string | undefined), undefined, `refused: ${JSON.stringify(h)?.slice(0, 30)}`);
  }
  t.ok(isJsonContentType('application/json'));
  t.ok(isJsonContentType('Application/JSON; charset=utf-8'));
  t.notOk(isJsonContentType('text/plain'));
  t.notOk(isJsonContentType(undefined));
  t.notOk(isJsonContentType('application/jsonx'));
});

t.test('api request - a valid body: data, dataBase64, ttl', async (t) => {
  t.same(parseMessageBody(body({ target: 'cfg/interval', data: { ms: 200 } }), limits), { accepted: { target: 'cfg/interval', data: { ms: 200 } } });
  t.same(parseMessageBody(body({ target: 'x', data: null }), limits), { accepted: { target: 'x', data: null } }, 'null is a value');
  const bytes = parseMessageBody(body({ target: 'x', dataBase64: Buffer.from([0, 1, 255]).toString('base64'), ttl: 1.5 }), limits);
  t.ok('accepted' in bytes);
  if ('accepted' in bytes) {
    t.ok(bytes.accepted.data instanceof Uint8Array);
    t.same([...(bytes.accepted.data as Uint8Array)], [0, 1, 255]);
    t.equal(bytes.accepted.ttlMs, 1500);
  }
  const tiny = parseMessageBody(body({ target: 'x', data: 1, ttl: 0.0001 }), limits);
  t.equal('accepted' in tiny && tiny.accepted.ttlMs, 1, 'a tiny ttl is at least 1 ms');
});

t.test('api request - every bad body gets its status, code and the field named', async (t) => {
  const cases: [Uint8Array, number, string, RegExp][] = [
    [body('{"target": "x", "data": '), 400, ErrorCode.API_BODY_INVALID, /not valid JSON/],
    [body(''), 400, ErrorCode.API_BODY_INVALID, /not valid JSON/],
    [Buffer.from([0x7b, 0xff, 0x7d]), 400, ErrorCode.API_BODY_INVALID, /not UTF-8/],
    [body([1, 2]), 400, ErrorCode.API_BODY_INVALID, /must be a JSON object/],
    [body('"text"'), 400, ErrorCode.API_BODY_INVALID, /must be a JSON object/],
    [body({ target: 'x', data: 1, tll: 5 }), 400, ErrorCode.API_BODY_INVALID, /unknown key 'tll'/],
    [body('{"target": "x", "data": 1, "__proto__": {}}'), 400, ErrorCode.API_BODY_INVALID, /unknown key '__proto__'/],
    [body({ data: 1 }), 400, ErrorCode.API_BODY_INVALID, /target: missing/],
    [body({ target: '', data: 1 }), 400, ErrorCode.API_BODY_INVALID, /target: target must be a non-empty string/],
    [body({ target: 7, data: 1 }), 400, ErrorCode.API_BODY_INVALID, /target: /],
    [body({ target: 'a/#', data: 1 }), 400, ErrorCode.API_BODY_INVALID, /target: .*\+ or #/],
    [body({ target: 'a\u0000b', data: 1 }), 400, ErrorCode.API_BODY_INVALID, /control character/],
    [body({ target: 'é'.repeat(128), data: 1 }), 400, ErrorCode.API_BODY_INVALID, /256 bytes; the maximum is 255/],
    [body({ target: 'x' }), 400, ErrorCode.API_BODY_INVALID, /data: missing/],
    [body({ target: 'x', data: 1, dataBase64: 'AA==' }), 400, ErrorCode.API_BODY_INVALID, /not both/],
    [body({ target: 'x', dataBase64: 'not base64!' }), 400, ErrorCode.API_BODY_INVALID, /dataBase64: standard base64/],
    [body({ target: 'x', dataBase64: 'AAA' }), 400, ErrorCode.API_BODY_INVALID, /dataBase64/],
    [body({ target: 'x', dataBase64: 5 }), 400, ErrorCode.API_BODY_INVALID, /dataBase64/],
    [body({ target: 'x', data: 'y'.repeat(99) }), 413, ErrorCode.API_BODY_TOO_LARGE, /data: 101 bytes as JSON text; the maximum is 100/],
    [body({ target: 'x', dataBase64: Buffer.alloc(101).toString('base64') }), 413, ErrorCode.API_BODY_TOO_LARGE, /dataBase64: 101 bytes; the maximum is 100/],
    [body({ target: 'x', data: [[[[[1]]]]] }), 400, ErrorCode.API_BODY_INVALID, /data: nested more than 4 levels/],
    [body('{"target": "x", "data": {"a": {"__proto__": 1}}}'), 400, ErrorCode.API_BODY_INVALID, /__proto__/],
    [body({ target: 'x', data: 1, ttl: 0 }), 400, ErrorCode.API_BODY_INVALID, /ttl: a number of seconds > 0/],
    [body({ target: 'x', data: 1, ttl: -3 }), 400, ErrorCode.API_BODY_INVALID, /ttl/],
    [body({ target: 'x', data: 1, ttl: '60' }), 400, ErrorCode.API_BODY_INVALID, /ttl: .*got "60"/],
    [body({ target: 'x', data: 1, ttl: null }), 400, ErrorCode.API_BODY_INVALID, /ttl/],
    [body({ target: 'x', data: 1, ttl: 1e12 }), 400, ErrorCode.API_BODY_INVALID, /ttl: at most 31536000 seconds/],
  ];
  for (const [b, status, code, message] of cases) {
    const r = parseMessageBody(b, limits);
    t.match(r, { status, code, message }, `${Buffer.from(b).toString('utf8').slice(0, 50)} → ${status}`);
  }
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  t.match(parseMessageBody(body(`{"target": "x", "data": ${deep}}`), { messageBytesMax: 1 << 20, dataDepthMax: 32 }), { status: 400, message: /nested more than 32/ }, 'very deep data is refused, not a crash');
});
