import { ErrorCode, FerryError } from '../protocol/errors.js';

/** Placeholder: the gateway's status (branch ops-gw-admin) replaces this file at merge. */
export async function runGatewayStatus(_args: string[]): Promise<number> {
  throw new FerryError(ErrorCode.CONFIG_INVALID, 'gateway status not built');
}
