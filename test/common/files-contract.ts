/**
 * The `Files` contract (common/files.ts) as one suite run against every implementation:
 * `filesContract(t, 'real-files', async () => ({ files: realFiles, dir, cleanup }))`.
 * Each test gets a fresh, empty directory `dir` from `make` and cleans it up at its end.
 * What only a fault model can show (power cuts, short writes, kills) is tested in
 * test/sim/sim-disk.test.ts.
 */
import type t from 'tap';
import { join } from 'node:path';
import type { Files } from '../../common/files.js';

/** A subtest, as `t.test` hands it to its callback. */
export type Test = Parameters<Parameters<typeof t.test>[0]>[0];

export interface FilesUnderTest {
  files: Files;
  /** an empty directory the test may use */
  dir: string;
  cleanup(): Promise<void>;
}

const bytes = (text: string): Buffer => Buffer.from(text);

export function filesContract(t: Test, name: string, make: () => Promise<FilesUnderTest>): void {
  const setup = async (t: Test): Promise<FilesUnderTest> => {
    const made = await make();
    t.teardown(() => made.cleanup());
    return made;
  };

  t.test(`${name} - open: create makes the file, exclusive refuses an existing one, truncate empties it`, async (t) => {
    const { files, dir } = await setup(t);
    const path = join(dir, 'a');
    await t.rejects(files.open(path), { code: 'ENOENT' }, 'no create: ENOENT');
    const fh = await files.open(path, { create: true, exclusive: true });
    t.equal(await fh.size(), 0, 'a new file is empty');
    await fh.writeAll(bytes('hello'), 0);
    await fh.close();
    await t.rejects(files.open(path, { create: true, exclusive: true }), { code: 'EEXIST' });
    const again = await files.open(path, { create: true });
    t.equal(await again.size(), 5, 'create without exclusive opens the existing file as it is');
    await again.close();
    const cut = await files.open(path, { truncate: true });
    t.equal(await cut.size(), 0, 'truncate at open');
    await cut.close();
    await t.rejects(files.open(join(dir, 'missing', 'a'), { create: true }), { code: 'ENOENT' }, 'a missing directory');
  });

  t.test(`${name} - write: at a position it overwrites or extends (a gap reads as zeros), null appends`, async (t) => {
    const { files, dir } = await setup(t);
    const path = join(dir, 'w');
    const fh = await files.open(path, { create: true });
    t.equal(await fh.write(bytes('abc'), 0), 3, 'resolves with the count');
    t.equal(await fh.write(bytes('XY'), 1), 2);
    t.equal(await fh.write(bytes('Z'), 5), 1);
    t.same(await files.readFile(path), Buffer.from([0x61, 0x58, 0x59, 0, 0, 0x5a]));
    t.equal(await fh.write(bytes('!'), null), 1);
    t.equal(await fh.write(bytes(''), 0), 0, 'an empty write writes nothing');
    t.same(await files.readFile(path), Buffer.from('aXY\0\0Z!'));
    await fh.close();
  });

  t.test(`${name} - write: on an append handle every write goes to the end`, async (t) => {
    const { files, dir } = await setup(t);
    const path = join(dir, 'log');
    const fh = await files.open(path, { create: true, append: true });
    await fh.writeAll(bytes('one'), null);
    await fh.writeAll(bytes('two'), 0);
    t.same((await files.readFile(path)).toString(), 'onetwo');
    await fh.close();
  });

  t.test(`${name} - read: at a position into an offset, short at the end, 0 past it`, async (t) => {
    const { files, dir } = await setup(t);
    const path = join(dir, 'r');
    const fh = await files.open(path, { create: true });
    await fh.writeAll(bytes('0123456789'), 0);
    const buf = Buffer.alloc(8, '.');
    t.equal(await fh.read(buf, 2, 4, 3), 4);
    t.equal(buf.toString(), '..3456..');
    t.equal(await fh.read(buf, 0, 8, 7), 3, 'short at the end of the file');
    t.equal(buf.subarray(0, 3).toString(), '789');
    t.equal(await fh.read(buf, 0, 8, 10), 0, 'at the end');
    t.equal(await fh.read(buf, 0, 8, 100), 0, 'past the end');
    await fh.close();
    const ro = await files.open(path, { readOnly: true });
    t.equal(await ro.read(buf, 0, 8, 0), 8, 'a read-only handle reads');
    await t.rejects(ro.write(bytes('x'), 0), { code: 'EBADF' }, 'and does not write');
    await ro.close();
  });

  t.test(`${name} - writeAll writes every byte, readFile returns them`, async (t) => {
    const { files, dir } = await setup(t);
    const path = join(dir, 'big');
    const data = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 9)) & 0xff;
    const fh = await files.open(path, { create: true, dsync: true });
    await fh.writeAll(data, 0);
    await fh.writeAll(bytes('tail'), null);
    t.equal(await fh.size(), data.length + 4);
    await fh.datasync();
    await fh.close();
    const back = await files.readFile(path);
    t.ok(back.subarray(0, data.length).equals(data), 'the bytes come back');
    t.equal(back.subarray(data.length).toString(), 'tail');
  });

  t.test(`${name} - truncate cuts or extends with zeros; size follows`, async (t) => {
    const { files, dir } = await setup(t);
    const path = join(dir, 't');
    const fh = await files.open(path, { create: true });
    await fh.writeAll(bytes('abcdef'), 0);
    await fh.truncate(2);
    t.equal(await fh.size(), 2);
    await fh.truncate(4);
    t.equal(await fh.size(), 4);
    t.same(await files.readFile(path), Buffer.from([0x61, 0x62, 0, 0]));
    await fh.writeAll(bytes('!'), null);
    t.same((await files.readFile(path)).toString(), 'ab\0\0!', 'null appends at the new end');
    await fh.close();
  });

  t.test(`${name} - rename replaces an existing target; unlink removes; both ENOENT when missing`, async (t) => {
    const { files, dir } = await setup(t);
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    for (const [path, text] of [[a, 'new'], [b, 'old contents']] as const) {
      const fh = await files.open(path, { create: true });
      await fh.writeAll(bytes(text), 0);
      await fh.close();
    }
    await files.rename(a, b);
    t.same(await files.readdir(dir), ['b']);
    t.equal((await files.readFile(b)).toString(), 'new');
    await t.rejects(files.rename(a, b), { code: 'ENOENT' });
    await files.syncDir(dir);
    await files.unlink(b);
    t.same(await files.readdir(dir), []);
    await t.rejects(files.unlink(b), { code: 'ENOENT' });
    await t.rejects(files.readFile(b), { code: 'ENOENT' });
    await files.syncDir(dir);
  });

  t.test(`${name} - a handle keeps working after its file is renamed or unlinked`, async (t) => {
    const { files, dir } = await setup(t);
    const fh = await files.open(join(dir, 'a'), { create: true });
    await fh.writeAll(bytes('abc'), 0);
    await files.rename(join(dir, 'a'), join(dir, 'b'));
    await fh.writeAll(bytes('d'), null);
    t.equal((await files.readFile(join(dir, 'b'))).toString(), 'abcd', 'the renamed file is the same file');
    await files.unlink(join(dir, 'b'));
    const buf = Buffer.alloc(4);
    t.equal(await fh.read(buf, 0, 4, 0), 4);
    t.equal(buf.toString(), 'abcd');
    await fh.close();
  });

  t.test(`${name} - mkdir makes parents and accepts an existing directory; readdir is sorted names`, async (t) => {
    const { files, dir } = await setup(t);
    const deep = join(dir, 'x', 'y', 'z');
    await files.mkdir(deep);
    await files.mkdir(deep);
    await files.mkdir(join(dir, 'x'));
    for (const n of ['b', 'a', 'c10', 'c2', 'B']) await (await files.open(join(deep, n), { create: true })).close();
    t.same(await files.readdir(deep), ['B', 'a', 'b', 'c10', 'c2']);
    t.same(await files.readdir(join(dir, 'x')), ['y']);
    await files.syncDir(deep);
    await t.rejects(files.readdir(join(dir, 'nope')), { code: 'ENOENT' });
    await t.rejects(files.mkdir(join(deep, 'a')), { code: 'EEXIST' }, 'a file is in the way');
    await t.rejects(files.readFile(join(dir, 'x')), { code: 'EISDIR' });
  });

  t.test(`${name} - every handle operation after close rejects EBADF`, async (t) => {
    const { files, dir } = await setup(t);
    const fh = await files.open(join(dir, 'c'), { create: true });
    await fh.writeAll(bytes('abc'), 0);
    await fh.close();
    await t.rejects(fh.write(bytes('x'), 0), { code: 'EBADF' }, 'write');
    await t.rejects(fh.writeAll(bytes('x'), null), { code: 'EBADF' }, 'writeAll');
    await t.rejects(fh.read(Buffer.alloc(1), 0, 1, 0), { code: 'EBADF' }, 'read');
    await t.rejects(fh.datasync(), { code: 'EBADF' }, 'datasync');
    await t.rejects(fh.truncate(0), { code: 'EBADF' }, 'truncate');
    await t.rejects(fh.size(), { code: 'EBADF' }, 'size');
  });

  t.test(`${name} - lock is exclusive until released; locks of other names are independent`, async (t) => {
    const { files, dir } = await setup(t);
    const path = join(dir, 'LOCK');
    const lock = await files.lock(path);
    await t.rejects(files.lock(path), { code: 'ELOCKED' }, 'a second lock of the same path');
    const other = await files.lock(join(dir, 'OTHER'));
    await lock.release();
    const again = await files.lock(path);
    await t.rejects(files.lock(path), { code: 'ELOCKED' }, 'held again');
    await again.release();
    await other.release();
    await t.rejects(files.lock(join(dir, 'missing', 'LOCK')), { code: 'ENOENT' }, 'its directory must exist');
  });
}
