/**
 * Every setting the broker reads, from the environment, validated at start.
 * One table here is the single source of truth; the README's configuration table mirrors it.
 */
import ipaddr from 'ipaddr.js';
import proxyaddr from 'proxy-addr';

export interface Config {
  httpPort: number;
  httpHost: string;
  trustedProxies: string[];
  rateLimits: boolean;
  rateAnonPerMin: number;
  rateSendPerMin: number;
  rateWaitPerMin: number;
  ratePingPerMin: number;
  waitTimeoutS: number;
  maxBodyBytes: number;
  inviteTtlS: number;
  listenerTtlS: number;
  messageTtlS: number;
  tokenTtlS: number;
  queueMaxMessages: number;
  queueMaxBytes: number;
  sweepIntervalS: number;
  drainTimeoutS: number;
  logLevel: string;
  /** Where rooms live: '' for this process (sql.js + memory), or a redis:// URL shared by several brokers. */
  stateUrl: string;
  /** Shared hashing key for several brokers on one STATE_URL (required then). */
  secret: string;
  /** IPs/CIDRs the A2A door may dial although they are not public addresses (loopback, private…). */
  a2aDialAllow: string[];
  /** The MCP door (/mcp): its default wait slice, progress interval, session cap and idle expiry. */
  mcpWaitS: number;
  mcpProgressS: number;
  mcpMaxSessions: number;
  mcpSessionIdleS: number;
}

export class ConfigError extends Error {}

export type Env = Record<string, string | undefined>;

export function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function onOff(env: Env, name: string, def: boolean): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '') return def;
  if (['on', 'true', '1', 'yes'].includes(raw)) return true;
  if (['off', 'false', '0', 'no'].includes(raw)) return false;
  throw new ConfigError(`${name} must be "on" or "off", got "${env[name]}"`);
}

function ipList(env: Env, name: string): string[] {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return [];
  return raw.split(',').map((s) => s.trim()).filter(Boolean).map((c) => {
    try {
      if (c.includes('/')) ipaddr.parseCIDR(c);
      else ipaddr.parse(c);
    } catch {
      throw new ConfigError(`${name} must be a comma-separated list of IPs or CIDRs, bad entry "${c}"`);
    }
    return c;
  });
}

function cidrs(env: Env, name: string): string[] {
  return ipList(env, name).map((c) => {
    // Validate exactly as the HTTP adapter will compile it (proxy-addr refuses /0, for one).
    try {
      proxyaddr.compile([c]);
    } catch {
      throw new ConfigError(`${name} entry "${c}" is not accepted: trusting every address would let any client choose its rate-limit bucket`);
    }
    return c;
  });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function logLevel(env: Env): string {
  const level = (env.LOG_LEVEL ?? '').trim() || 'info';
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  return level;
}

export function loadConfig(env: Env = process.env): Config {
  const host = (env.HTTP_HOST ?? '').trim() || '0.0.0.0';
  if (host !== 'localhost' && !ipaddr.isValid(host)) throw new ConfigError(`HTTP_HOST must be an IP address or "localhost", got "${host}"`);
  return {
    httpPort: int(env, 'HTTP_PORT', 3000, 0, 65535),
    httpHost: host,
    trustedProxies: cidrs(env, 'TRUSTED_PROXIES'),
    rateLimits: onOff(env, 'RATE_LIMITS', true),
    rateAnonPerMin: int(env, 'RATE_ANON_PER_MIN', 30, 1, 1_000_000),
    rateSendPerMin: int(env, 'RATE_SEND_PER_MIN', 120, 1, 1_000_000),
    rateWaitPerMin: int(env, 'RATE_WAIT_PER_MIN', 240, 1, 1_000_000),
    ratePingPerMin: int(env, 'RATE_PING_PER_MIN', 120, 1, 1_000_000),
    waitTimeoutS: int(env, 'WAIT_TIMEOUT_S', 110, 1, 3600),
    maxBodyBytes: int(env, 'MAX_BODY_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    inviteTtlS: int(env, 'INVITE_TTL_S', 3600, 1, 30 * 86400),
    listenerTtlS: int(env, 'LISTENER_TTL_S', 86400, 1, 30 * 86400),
    messageTtlS: int(env, 'MESSAGE_TTL_S', 3600, 1, 7 * 86400),
    tokenTtlS: int(env, 'TOKEN_TTL_S', 86400, 1, 365 * 86400),
    queueMaxMessages: int(env, 'QUEUE_MAX_MESSAGES', 100, 1, 100_000),
    queueMaxBytes: int(env, 'QUEUE_MAX_BYTES', 8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    sweepIntervalS: int(env, 'SWEEP_INTERVAL_S', 30, 1, 3600),
    drainTimeoutS: int(env, 'DRAIN_TIMEOUT_S', 10, 0, 600),
    logLevel: logLevel(env),
    ...stateSettings(env),
    a2aDialAllow: ipList(env, 'A2A_DIAL_ALLOW'),
    // Under 60 s: MCP clients without progress support give up on a call after 60 s.
    mcpWaitS: int(env, 'MCP_WAIT_S', 50, 1, 3600),
    mcpProgressS: int(env, 'MCP_PROGRESS_S', 5, 1, 600),
    mcpMaxSessions: int(env, 'MCP_MAX_SESSIONS', 1000, 1, 1_000_000),
    mcpSessionIdleS: int(env, 'MCP_SESSION_IDLE_S', 3600, 1, 30 * 86400),
  };
}

function stateSettings(env: Env): { stateUrl: string; secret: string } {
  const stateUrl = (env.STATE_URL ?? '').trim();
  const secret = env.PARLEY_SECRET ?? '';
  if (stateUrl === '' || stateUrl === 'memory') return { stateUrl: '', secret };
  if (!/^rediss?:\/\/[^\s]+$/.test(stateUrl)) throw new ConfigError(`STATE_URL must be "memory" or a redis:// URL, got "${stateUrl.slice(0, 80)}"`);
  if (secret.length < 32) throw new ConfigError('PARLEY_SECRET must be set to at least 32 characters when STATE_URL is shared: every broker hashes tokens with it');
  return { stateUrl, secret };
}
