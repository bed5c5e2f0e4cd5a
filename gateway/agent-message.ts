/**
 * What an agent is told when a handler did not deliver its packet. The handler's own message
 * names the backend (a broker URL, a webhook path that is itself a secret) and repeats what the
 * backend answered, which may echo that address back; an agent may be hostile, and what it is
 * told also lands in its dead letters on a device nobody watches. So the agent gets the handler's
 * kind, the target, the code and a fixed sentence per code; the full cause stays in the gateway's
 * log (redacted, see common/redact.ts).
 */
import { ErrorCode } from '../protocol/errors.js';

const sentences: Record<string, string> = {
  [ErrorCode.HANDLER_FAILED]: 'the backend did not take the packet',
  [ErrorCode.HANDLER_TIMEOUT]: 'the backend did not answer in time',
  [ErrorCode.HANDLER_REJECTED]: 'the backend refused the packet',
};
const otherSentence = 'the handler did not deliver the packet';
/** A target or a module handler's kind is cut to this in the message (the target is the agent's own: it is only a reminder). */
const nameCharsMax = 100;

/** The NACK message for a handler failure with `code`: no address, no backend text. */
export function agentMessage(kind: string, target: string, code: string, retryable: boolean): string {
  const said = sentences[code] ?? otherSentence;
  const then = retryable ? '; it is offered again later' : '';
  return `${kind.slice(0, nameCharsMax)} handler for target ${JSON.stringify(target.slice(0, nameCharsMax))}: ${code}: ${said}${then} (the cause is in the gateway's log)`;
}
