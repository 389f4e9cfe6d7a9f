/**
 * Fixed-window rate limits (rate-limiter-flexible, in memory): per address bucket on the
 * endpoints anyone can call, per token on send, wait and ping. RATE_LIMITS=off turns them off.
 */
import type { Context, Next } from 'koa';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { ParleyError } from '../engine.js';
import { addressBucket } from './client-address.js';

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

  /** Middleware: `anon` limits by address bucket, the others by the bearer token (whose hash is the key). */
  return (name: LimitName, keyOf: (ctx: Context) => string) =>
    async (ctx: Context, next: Next) => {
      if (!config.rateLimits) return next();
      try {
        await limiters[name].consume(keyOf(ctx));
      } catch (e) {
        if (!(e instanceof RateLimiterRes)) throw e;
        metrics.rateLimited.inc({ limit: name });
        const retry = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
        throw new ParleyError(429, `Rate limit exceeded: retry in ${retry}s`, 'rate_limited', retry);
      }
      return next();
    };
}
