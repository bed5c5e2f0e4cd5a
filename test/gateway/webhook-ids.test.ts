/**
 * Issue 10, case 9: a webhook `{agent}` or `{target}` of `.` or `..` escaped its path segment
 * (encodeURIComponent leaves dots alone and URL resolution removes the segment): with
 * `/tenants/{agent}/events/{target}`, target `..` was posted to `/tenants/tenant-a/`. Against a
 * real node:http server: such a packet is refused for good and nothing is posted; every other ID
 * arrives in its own segment and in its header, decoding back to itself.
 */
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DispatchPacket, HandlerResult } from '../../gateway/handlers/handler.js';
import { createWebhookHandler } from '../../gateway/handlers/webhook.js';
import { ErrorCode } from '../../protocol/errors.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface Arrived { path: string; agent: string; target: string }

async function server(t: Test): Promise<{ base: string; arrived: Arrived[] }> {
  const arrived: Arrived[] = [];
  const s = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      arrived.push({ path: req.url ?? '', agent: String(req.headers['ferry-agent']), target: String(req.headers['ferry-target']) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return { base: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, arrived };
}

function pkt(seq: number, agent: string, target: string): DispatchPacket {
  return { agent, seq, target, ts: 1_700_000_000_000 + seq, data: { seq } };
}

function refused(t: Test, r: HandlerResult, what: string): void {
  t.same(r.ok ? r : { ok: r.ok, retryable: r.retryable, code: r.code }, { ok: false, retryable: false, code: ErrorCode.HANDLER_REJECTED }, `${what} (${r.ok ? 'posted' : r.message})`);
}

t.test('webhook handler - an agent or target of . or .. does not leave its path segment: refused, nothing posted', async (t) => {
  const { base, arrived } = await server(t);
  const h = createWebhookHandler({ url: `${base}/tenants/{agent}/events/{target}` });
  t.teardown(() => h.close());
  refused(t, await h.handle(pkt(1, 'tenant-a', '..')), 'target ..');
  refused(t, await h.handle(pkt(2, 'tenant-a', '.')), 'target .');
  refused(t, await h.handle(pkt(3, '..', 'x')), 'agent ..');
  refused(t, await h.handle(pkt(4, '.', 'x')), 'agent .');
  const dotted = createWebhookHandler({ url: `${base}/in/.{target}/x` });
  t.teardown(() => dotted.close());
  refused(t, await dotted.handle(pkt(5, 'tenant-a', '.')), 'target . after a dot in the template: together ..');
  t.same(arrived, [], 'nothing was posted anywhere');
  t.throws(() => createWebhookHandler({ url: `${base}/a/../{target}` }), { code: ErrorCode.CONFIG_INVALID }, 'a template with its own dot segment is refused at creation');
  t.throws(() => createWebhookHandler({ url: `${base}/a/%2E/{target}` }), { code: ErrorCode.CONFIG_INVALID }, 'also spelled %2E');
});

t.test('webhook handler - IDs with dots, percent signs and edge spaces arrive in their own segment and header, intact', async (t) => {
  const { base, arrived } = await server(t);
  const h = createWebhookHandler({ url: `${base}/tenants/{agent}/events/{target}` });
  t.teardown(() => h.close());
  const targets = ['...', '.a', 'a.', '%2e', '%2e%2e', '.%2e', 'a/..', '../x', ' lead', 'trail ', ' ', 'a b', '%', 'é/🌡', "!*'()"];
  let seq = 0;
  for (const target of targets) {
    const r = await h.handle(pkt(++seq, 'tenant-a', target));
    t.same(r, { ok: true }, `${JSON.stringify(target)} posted`);
    const got = arrived.at(-1)!;
    const segments = got.path.split('/');
    t.same(segments.slice(0, 4), ['', 'tenants', 'tenant-a', 'events'], `${JSON.stringify(target)}: under /tenants/tenant-a/events/ (${got.path})`);
    t.equal(segments.length, 5, `${JSON.stringify(target)}: one segment`);
    t.equal(decodeURIComponent(segments[4]!), target, `${JSON.stringify(target)}: the segment decodes back`);
    t.equal(decodeURIComponent(got.target), target, `${JSON.stringify(target)}: the Ferry-Target header decodes back`);
  }
});
