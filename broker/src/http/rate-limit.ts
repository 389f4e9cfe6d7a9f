/**
 * Fixed-window rate limits (rate-limiter-flexible, in memory): per address bucket on the
 * endpoints anyone can call, per token on send, wait and ping. RATE_LIMITS=off turns them off.
 */
import type { Context, Next } from 'koa';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from '../config.js';
import { ParleyError } from '../engine.js';
import type { Metrics } from '../metrics.js';

export type LimitName = 'anon' | 'send' | 'wait' | 'ping';

export function rateLimits(config: Config, metrics: Metrics) {
  const perMin: Record<LimitName, number> = {
    anon: config.rateAnonPerMin,
    send: config.rateSendPerMin,
    wait: config.rateWaitPerMin,
    ping: config.ratePingPerMin,
  };
  const limiters = Object.fromEntries(
    Object.entries(perMin).map(([name, points]) => [name, new RateLimiterMemory({ points, duration: 60, keyPrefix: name })]),
  ) as Record<LimitName, RateLimiterMemory>;

  /** Counts one request against `keyOf()`; a 429 ParleyError with Retry-After once the window is spent. */
  const check = async (name: LimitName, keyOf: () => string): Promise<void> => {
    if (!config.rateLimits) return; // and the key (an HMAC, for tokens) is never computed
    try {
      await limiters[name].consume(keyOf());
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      metrics.rateLimited.inc({ limit: name });
      const retry = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
      throw new ParleyError(429, `Rate limit exceeded: retry in ${retry}s`, 'rate_limited', retry);
    }
  };

  /** The same as Koa middleware: `anon` keys by address bucket, the others by the bearer token's hash. */
  const middleware = (name: LimitName, keyOf: (ctx: Context) => string) => async (ctx: Context, next: Next) => {
    await check(name, () => keyOf(ctx));
    return next();
  };
  return { check, middleware };
}

export type RateLimits = ReturnType<typeof rateLimits>;
