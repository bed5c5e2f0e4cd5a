import t from 'tap';
import { frameRecord, recordBodyBytesMax, recordHeaderBytes, scanRecords } from '../../common/record.js';
import { ErrorCode, isFerryError } from '../../protocol/errors.js';

const refused = (fn: () => unknown): boolean => {
  try {
    fn();
    return false;
  } catch (err) {
    return isFerryError(err, ErrorCode.RECORD_TOO_LARGE);
  }
};

t.test('record - a body of the maximum is framed and read back; one byte more is refused with RECORD_TOO_LARGE, nothing framed', async (t) => {
  const max = 1000;
  const whole = frameRecord(Buffer.alloc(max, 7), max);
  t.same(scanRecords(whole, max), { bodies: [Buffer.alloc(max, 7)], validBytes: recordHeaderBytes + max });
  t.ok(refused(() => frameRecord(Buffer.alloc(max + 1), max)), 'RECORD_TOO_LARGE');
});

t.test('record - by default the writer refuses exactly what the reader would take for a torn tail', async (t) => {
  const over = Buffer.alloc(recordBodyBytesMax + 1);
  t.ok(refused(() => frameRecord(over)), 'RECORD_TOO_LARGE');
  // What such a record would have been: the reader stops at it.
  const header = Buffer.alloc(recordHeaderBytes);
  header.writeUInt32BE(over.length, 0);
  t.equal(scanRecords(Buffer.concat([frameRecord(Buffer.from('a')), header, over])).validBytes, recordHeaderBytes + 1);
  t.equal(scanRecords(frameRecord(Buffer.alloc(recordBodyBytesMax))).bodies.length, 1, 'the maximum itself is read back');
});
