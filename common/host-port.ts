/**
 * HOST:PORT settings checked when the configuration is loaded: a port past 65535 would otherwise
 * pass the schema and fail later with Node's own message (RangeError, no code, no key named).
 */

export const portMax = 65_535;

/** `HOST:PORT` split at its last colon; the port as a number (NaN when it is not digits). */
export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  const port = hostPort.slice(i + 1);
  return { host: i < 0 ? '' : hostPort.slice(0, i), port: /^\d+$/.test(port) ? Number(port) : Number.NaN };
}

/**
 * What is wrong with a HOST:PORT (null: nothing). `portMin` is 0 for a listener (0: any free
 * port) and 1 for an address to dial.
 */
export function hostPortProblem(hostPort: string, portMin: 0 | 1): string | null {
  const { host, port } = splitHostPort(hostPort);
  if (host === '') return `no host in '${hostPort}': expected HOST:PORT, e.g. 127.0.0.1:7800`;
  if (!Number.isInteger(port)) return `no port in '${hostPort}': expected HOST:PORT, e.g. 127.0.0.1:7800`;
  if (port < portMin || port > portMax) return `port ${port} is out of range (${portMin} to ${portMax})`;
  return null;
}
