/**
 * Rate limits, in one place for every door (rate-limiter-flexible, fixed windows, in memory):
 * per address bucket on what anyone can call, per token on send, wait, ping and the room
 * controls, and a count of failed authentications per address, so a client cannot dodge the
 * per-token limits by inventing a fresh random token per request. RATE_LIMITS=off turns them off.
 * On a shared backend the counts live in Redis, so N brokers do not allow N times the rate; if
 * Redis stops answering, each broker falls back to counting in its own memory.
 */
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from './config.js';
import { refuse } from './engine/errors.js';
import type { Metrics } from './metrics.js';

export type LimitName = 'anon' | 'send' | 'wait' | 'ping' | 'control';

/** Failed authentications an address bucket may make per minute before it is refused. */
const AUTH_FAILURES_PER_MIN = 30;

export function rateLimits(config: Config, metrics: Metrics, redis?: unknown) {
  const perMin: Record<LimitName, number> = {
    anon: config.rateAnonPerMin,
    send: config.rateSendPerMin,
    wait: config.rateWaitPerMin,
    ping: config.ratePingPerMin,
    // /leave and /resume: per token, so a noisy neighbour on the same /24 cannot stop a participant leaving.
    control: config.ratePingPerMin,
  };
  const limiter = (points: number, keyPrefix: string): RateLimiterAbstract => {
    const memory = new RateLimiterMemory({ points, duration: 60, keyPrefix });
    return redis ? new RateLimiterRedis({ storeClient: redis, points, duration: 60, keyPrefix: `parley:rl:${keyPrefix}`, insuranceLimiter: memory }) : memory;
  };
  const limiters = Object.fromEntries(Object.entries(perMin).map(([name, points]) => [name, limiter(points, name)])) as Record<LimitName, RateLimiterAbstract>;
  const authFailures = limiter(AUTH_FAILURES_PER_MIN, 'authfail');

  const refused = (name: string, msBeforeNext: number) => {
    metrics.rateLimited.inc({ limit: name });
    const retry = Math.max(1, Math.ceil(msBeforeNext / 1000));
    return name === 'auth'
      ? refuse('auth_failures', `Too many failed authentications from your address: retry in ${retry}s`, retry)
      : refuse('rate_limited', `Rate limit exceeded: retry in ${retry}s`, retry);
  };

  return {
    /** Counts one request against `keyOf()`; a rate_limited refusal with a retry time once the window is spent. */
    async check(name: LimitName, keyOf: () => string): Promise<void> {
      if (!config.rateLimits) return; // and the key (an HMAC, for tokens) is never computed
      try {
        await limiters[name].consume(keyOf());
      } catch (e) {
        if (!(e instanceof RateLimiterRes)) throw e;
        throw refused(name, e.msBeforeNext);
      }
    },
    /** Refuses an address bucket that has failed authentication too often this minute. */
    async checkAuth(bucket: Bucket): Promise<void> {
      if (!config.rateLimits) return;
      const r = await authFailures.get(keyOf(bucket));
      if (r && r.consumedPoints >= AUTH_FAILURES_PER_MIN) throw refused('auth', r.msBeforeNext);
    },
    /** Counts one failed authentication against an address bucket. */
    async authFailed(bucket: Bucket): Promise<void> {
      if (!config.rateLimits) return;
      await authFailures.penalty(keyOf(bucket), 1);
    },
  };
}

export type RateLimits = ReturnType<typeof rateLimits>;

/** An address bucket, or how to compute it (only when limits are on: it parses the address). */
type Bucket = string | (() => string);
const keyOf = (b: Bucket) => (typeof b === 'string' ? b : b());
