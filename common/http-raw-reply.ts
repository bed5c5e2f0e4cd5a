/**
 * A JSON refusal written straight onto a socket, for a request node:http never handed over
 * (`clientError`: headers too large, too slow, not HTTP). The connection closes after it.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

export function endWithJson(socket: Duplex, status: number, body: unknown): void {
  if (!socket.writable) return void socket.destroy();
  const text = JSON.stringify(body);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
}
