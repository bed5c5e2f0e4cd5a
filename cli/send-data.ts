/**
 * The packet data of `ferry send`: `--data JSON` as given, `--data -` from stdin, `--data @FILE`
 * from a file. Stdin and files are read up to `bytesMax` only: more is refused (DATA_TOO_LARGE)
 * as soon as it arrives, without buffering the rest.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { ErrorCode, FerryError } from '../protocol/errors.js';

export async function readSendData(arg: string, stdin: Readable, bytesMax: number): Promise<unknown> {
  let text = arg;
  let from = '--data';
  if (arg === '-') {
    from = '--data - (stdin)';
    text = await readBounded(stdin, bytesMax, from);
  } else if (arg.startsWith('@')) {
    const file = arg.slice(1);
    from = `--data @${file}`;
    text = await readBounded(createReadStream(file), bytesMax, from);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `${from} is not valid JSON: ${(err as Error).message}`);
  }
}

async function readBounded(stream: Readable, bytesMax: number, from: string): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of stream) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      bytes += b.length;
      if (bytes > bytesMax) {
        stream.destroy();
        throw new FerryError(ErrorCode.DATA_TOO_LARGE, `${from}: more than ${bytesMax} bytes (the agent's request line limit); nothing was sent`);
      }
      chunks.push(b);
    }
  } catch (err) {
    if (err instanceof FerryError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new FerryError(ErrorCode.LOCAL_REQUEST_INVALID, `${from}: cannot read (${e.code ?? e.message})`, { cause: err });
  }
  return Buffer.concat(chunks, bytes).toString('utf8');
}
