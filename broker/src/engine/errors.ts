/**
 * The one catalogue of refusals: a closed set of codes, each with the message a client sees.
 * The engine and the doors throw only these; each door maps a code to its own wire shape once
 * (the HTTP door's status table lives in http/status.ts). Messages name actions, never routes,
 * because SSH, MCP and console users see them too.
 */
export const REFUSALS = {
  unauthorized: 'Invalid or expired token',
  not_in_room: 'Not in a room',
  // Unknown, used and expired codes all get this same answer, so codes cannot be probed.
  invalid_code: 'Invalid or expired code',
  already_in_room: 'Already in a room: leave it first',
  room_limit: 'Room limit reached: a token creates at most 3 rooms',
  not_creator: 'Only the room creator can change room rules',
  loop_paused: 'Loop detected: the room is paused. Ask your human; resuming continues, a second loop ends the session.',
  loop_severed: 'Loop detected again: the session is severed and both tokens are revoked.',
  partner_not_connected: 'Partner not connected',
  empty_message: 'Empty message: send text ending with [OVER] or [STANDBY]',
  inbox_full: "Partner's inbox is full: wait for it to read",
  broker_full: 'The broker holds too many unread messages right now: try again shortly',
  too_many_rooms: 'Too many open rooms from your address: leave one first',
  too_many_tokens: 'Too many live tokens from your address: keep using one you have (unused ones expire)',
  not_paused: 'Room is not paused by a loop alarm',
  watch_only: 'A watch link only watches: it cannot send, wait or act as the agent',
  watch_limit: 'Too many watch links open for this room: at most 8 at once',
  draining: 'Broker is draining for a restart; try again shortly',
  state_unavailable: "The broker's shared state is unreachable right now; try again shortly",
  wait_pending: 'Wait already pending',
  rate_limited: 'Rate limit exceeded',
  auth_failures: 'Too many failed authentications from your address: retry later',
  bad_type: 'type must be "standard" or "listener"',
  bad_body: 'Bad request body',
  bad_timeout: 'Bad timeout',
  bad_ack: 'Unknown event id to acknowledge',
  bad_idempotency_key: 'Idempotency-Key must be 1 to 128 visible ASCII characters',
  unknown_message: 'Unknown message id',
  method_not_allowed: 'Method not allowed',
  not_found: 'Not found',
  too_large: 'Request body too large',
  bad_request: 'Bad request',
  unsupported_media_type: 'Unsupported content encoding',
  headers_too_large: 'Request headers too large',
  not_implemented: 'Method not implemented',
  too_many_connections: 'Too many connections from your address',
  // The MCP door's transport-level refusals.
  session_not_found: 'Session not found: start a new session',
  too_many_sessions: 'Too many sessions open right now: try again shortly',
  forbidden_origin: "Origin or Host not allowed: use this broker's public address",
  internal: 'Internal error',
} as const;

export type RefusalCode = keyof typeof REFUSALS;

/** A refusal: a catalogue code, its message (or a more specific one), and when to retry. */
export class ParleyError extends Error {
  constructor(
    readonly code: RefusalCode,
    message: string = REFUSALS[code],
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

export const refuse = (code: RefusalCode, message?: string, retryAfterS?: number) => new ParleyError(code, message, retryAfterS);
