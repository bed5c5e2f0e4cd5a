import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isTmpNameOf, uniqueTmpPath, writeFileAtomic } from '../../common/durable-file.js';
import { realFiles } from '../../common/real-files.js';

t.test('durable-file - writers with temporary names of their own never install a mix of two writes', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'agents.json');
  const texts = Array.from({ length: 8 }, (_, i) => `${JSON.stringify({ writer: i, pad: 'x'.repeat(64 * 1024 * (i + 1)) })}\n`);
  await Promise.all(texts.map((text, i) => writeFileAtomic(realFiles, path, text, { tmpPath: uniqueTmpPath(path, randomBytes(6), 1000 + i) })));
  const final = await readFile(path, 'utf8');
  t.ok(texts.includes(final), 'the file is one whole write');
  t.same(await readdir(dir), ['agents.json'], 'every temporary file was renamed away');
});

t.test('durable-file - the default temporary name is PATH.tmp (single-owner files keep one leftover at most)', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'x.log');
  await writeFileAtomic(realFiles, path, 'one');
  t.equal(await readFile(path, 'utf8'), 'one');
  t.same(await readdir(dir), ['x.log']);
});

t.test('durable-file - isTmpNameOf knows both temporary names and nothing else', async (t) => {
  const unique = uniqueTmpPath('agents.json', Buffer.from([0, 255, 16]), 42);
  t.equal(unique, 'agents.json.42.00ff10.tmp');
  for (const name of ['agents.json.tmp', unique]) t.ok(isTmpNameOf('agents.json', name), name);
  for (const name of ['agents.json', 'agents.json.bak', 'agents.json.x.tmp', 'other.json.1.ab.tmp', 'agents.json.1.ab.tmp.old']) t.notOk(isTmpNameOf('agents.json', name), name);
});
