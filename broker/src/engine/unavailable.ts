/**
 * A shared backend can go away (Redis restarting). Then a request must get a refusal the client
 * can act on (503, retry shortly), not an internal error. Anything that fails while the backend
 * still answers is a real fault and stays one.
 */
import type { StateBackend } from '../backend/ports.js';
import { ParleyError, refuse } from './errors.js';
import type { RoomService } from './service.js';

const CALLS = ['register', 'setup', 'open', 'join', 'registerAndJoin', 'setHeadless', 'send', 'next', 'status', 'fate', 'resume', 'leave', 'watchLink', 'redeemWatch', 'watchNext', 'watchStatus', 'watchResume', 'watchEnd'] as const;

export function refusingWhenUnavailable(rooms: RoomService, backend: StateBackend): RoomService {
  const guarded = Object.create(rooms) as RoomService;
  for (const name of CALLS) {
    const call = (rooms[name] as (...a: unknown[]) => Promise<unknown>).bind(rooms);
    (guarded as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      try {
        return await call(...args);
      } catch (e) {
        if (e instanceof ParleyError || (await Promise.resolve(backend.ready()).catch(() => false))) throw e;
        throw refuse('state_unavailable', undefined, 5);
      }
    };
  }
  return guarded;
}
