/** Issue 10, case 7: what realFiles creates is private by default; a data directory open to others is tightened. */
import t from 'tap';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createLog } from '../../common/log.js';
import { ensurePrivateDir } from '../../common/private-dir.js';
import { realFiles } from '../../common/real-files.js';
import { groupId } from '../../agent/socket-group.js';
import { ErrorCode } from '../../protocol/errors.js';

const modeOf = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;

t.test('real-files - with umask 000, created files are 0600 and directories 0700 unless a mode is given', async (t) => {
  const umask = process.umask(0);
  t.teardown(() => { process.umask(umask); });
  const dir = t.testdir();
  await realFiles.mkdir(join(dir, 'a', 'b'));
  t.equal(await modeOf(join(dir, 'a')), 0o700, 'parents too');
  t.equal(await modeOf(join(dir, 'a', 'b')), 0o700);
  await realFiles.mkdir(join(dir, 'c'), 0o750);
  t.equal(await modeOf(join(dir, 'c')), 0o750);
  await (await realFiles.open(join(dir, 'f'), { create: true })).close();
  t.equal(await modeOf(join(dir, 'f')), 0o600);
  await (await realFiles.open(join(dir, 'g'), { create: true, append: true, mode: 0o640 })).close();
  t.equal(await modeOf(join(dir, 'g')), 0o640);
  await chmod(join(dir, 'g'), 0o644);
  await (await realFiles.open(join(dir, 'g'), { create: true, mode: 0o600 })).close();
  t.equal(await modeOf(join(dir, 'g')), 0o644, 'an existing file keeps its mode');
});

t.test('private-dir - a missing data dir is made 0700; one open to others is tightened to at most 0750 and logged; a private one is left alone', async (t) => {
  const umask = process.umask(0);
  t.teardown(() => { process.umask(umask); });
  const lines: string[] = [];
  const log = createLog({ write: (l) => lines.push(l) });
  const dir = t.testdir();
  t.equal(await ensurePrivateDir(join(dir, 'new', 'data'), log), null);
  t.equal(await modeOf(join(dir, 'new', 'data')), 0o700);
  await mkdir(join(dir, 'open'), { mode: 0o777 });
  t.equal(await ensurePrivateDir(join(dir, 'open'), log), 0o777);
  t.equal(await modeOf(join(dir, 'open')), 0o750);
  t.match(lines.join(''), /tightened.*"modeWas":"0777","mode":"0750"/);
  await mkdir(join(dir, 'group'), { mode: 0o750 });
  t.equal(await ensurePrivateDir(join(dir, 'group'), log), null, 'group read and search, set on purpose, are kept');
  t.equal(await modeOf(join(dir, 'group')), 0o750);
});

t.test('socket-group - a number, a numeric string or a name from /etc/group; an unknown name is CONFIG_INVALID', async (t) => {
  const etc = 'root:x:0:\nferry-users:x:1234:pi,admin\n';
  let reads = 0;
  const read = (): string => { reads++; return etc; };
  t.equal(groupId(7, read), 7);
  t.equal(groupId('42', read), 42);
  t.equal(reads, 0, '/etc/group is read only for a name');
  t.equal(groupId('ferry-users', read), 1234);
  t.throws(() => groupId('nobody-here', read), { code: ErrorCode.CONFIG_INVALID, message: /no group named "nobody-here"/ });
});
