import t from 'tap';
import { LineSplitter } from '../../agent/sources/line-splitter.js';

t.test('line splitter - lines come out whole whatever the chunk boundaries', async (t) => {
  const text = 't=21.5\r\nt=22\n{"t":1}\nh=40 t=3\n';
  const expected = ['t=21.5', 't=22', '{"t":1}', 'h=40 t=3'];
  for (let cut = 0; cut <= text.length; cut++) {
    const s = new LineSplitter(100);
    const got = [...s.push(Buffer.from(text.slice(0, cut))), ...s.push(Buffer.from(text.slice(cut)))];
    t.same(got, expected, `split at ${cut}`);
  }
  const s = new LineSplitter(100);
  const oneByOne = [...Buffer.from(text)].flatMap((b) => s.push(Buffer.from([b])));
  t.same(oneByOne, expected, 'one byte at a time');
});

t.test('line splitter - an overlong line is dropped and counted, the next line survives', async (t) => {
  const s = new LineSplitter(8);
  const got = [...s.push(Buffer.from('t=1\nxxxxx')), ...s.push(Buffer.from('xxxxxxxxxxxx')), ...s.push(Buffer.from('xx\nt=2\n'))];
  t.same(got, ['t=1', 't=2'], 'only the short lines');
  t.equal(s.overlong, 1, 'one overlong line counted');
  const endless = new LineSplitter(8);
  for (let i = 0; i < 1000; i++) endless.push(Buffer.alloc(1024, 0x41));
  t.equal(endless.overlong, 1, 'a device that never sends a newline costs one count, not memory');
  t.same(endless.push(Buffer.from('\nt=3\n')), ['t=3'], 'and the stream recovers at the next newline');
});
