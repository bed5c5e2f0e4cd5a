/**
 * Splits a serial byte stream into text lines with a bound on line length: serialport's
 * ReadlineParser buffers without limit, so a device that never sends '\n' would grow memory.
 * A line longer than `lineBytesMax` is dropped (counted in `overlong`) up to its newline.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private skipping = false;
  overlong = 0;

  constructor(private readonly lineBytesMax: number) {}

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      if (!this.skipping) {
        this.parts.push(chunk.subarray(start, end));
        this.partBytes += end - start;
        if (this.partBytes > this.lineBytesMax) {
          this.overlong++;
          this.skipping = true;
          this.parts = [];
          this.partBytes = 0;
        }
      }
      if (nl < 0) break;
      if (!this.skipping) lines.push(Buffer.concat(this.parts, this.partBytes).toString('utf8').replace(/\r$/, ''));
      this.parts = [];
      this.partBytes = 0;
      this.skipping = false;
      start = nl + 1;
    }
    // Keep a copy: the chunk's memory may be reused by the caller.
    if (this.parts.length > 0) this.parts = [Buffer.from(Buffer.concat(this.parts, this.partBytes))];
    return lines;
  }
}
