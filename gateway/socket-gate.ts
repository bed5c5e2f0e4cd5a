/**
 * Socket admission for an HTTP listener, decided at accept (on TLS: before the handshake): at most
 * `connectionsMax` sockets in all and `socketsPerAddressMax` from one remote address; a socket past
 * either is destroyed at once. Without it one address can hold every socket the process may open
 * with silent connections (600 of 600 were measured on listen.api). No timers, no IO of its own.
 */
export interface SocketGateLimits {
  connectionsMax: number;
  socketsPerAddressMax: number;
}

/** The part of a socket the gate uses. */
export interface GatedSocket {
  readonly remoteAddress?: string | undefined;
  destroy(): void;
  once(event: 'close', fn: () => void): unknown;
}

export class SocketGate<S extends GatedSocket = GatedSocket> {
  /** sockets admitted and not yet closed */
  readonly sockets = new Set<S>();
  private readonly perAddress = new Map<string, number>();

  constructor(private readonly limits: SocketGateLimits) {}

  /** Admits `socket`, counting it until it closes (null); or destroys it and names the limit it was past. */
  admit(socket: S): keyof SocketGateLimits | null {
    const address = socket.remoteAddress ?? 'unknown';
    const n = this.perAddress.get(address) ?? 0;
    const past = n >= this.limits.socketsPerAddressMax ? 'socketsPerAddressMax' : this.sockets.size >= this.limits.connectionsMax ? 'connectionsMax' : null;
    if (past !== null) {
      socket.destroy();
      return past;
    }
    this.sockets.add(socket);
    this.perAddress.set(address, n + 1);
    socket.once('close', () => {
      this.sockets.delete(socket);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });
    return null;
  }
}
