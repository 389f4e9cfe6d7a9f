/**
 * The HTTP broker's settings, from the environment, validated at start. Each one is declared
 * once, in the table in settings.ts; this file only says which field holds which.
 */
import { ConfigError, type Env, fromTable, S, type Setting, type TlsMode } from './settings.js';

export { ConfigError, type Env } from './settings.js';

export interface Config {
  httpPort: number;
  httpHost: string;
  /** The external base URL (an origin: no trailing slash), for anything that must name it. */
  publicUrl: string;
  trustedProxies: string[];
  rateLimits: boolean;
  rateAnonPerMin: number;
  rateSendPerMin: number;
  rateWaitPerMin: number;
  ratePingPerMin: number;
  /** Per-address caps (with rateLimits on): open rooms, live tokens, HTTP connections. */
  maxRoomsPerAddress: number;
  maxTokensPerAddress: number;
  httpMaxPerAddress: number;
  waitTimeoutS: number;
  maxBodyBytes: number;
  inviteTtlS: number;
  listenerTtlS: number;
  messageTtlS: number;
  tokenTtlS: number;
  queueMaxMessages: number;
  queueMaxBytes: number;
  /** Unread bytes across every inbox, before sends are refused (broker_full). */
  queueMaxTotalBytes: number;
  sweepIntervalS: number;
  drainTimeoutS: number;
  logLevel: string;
  /** Only for the start-up warning about names that cannot get a certificate. */
  tls: TlsMode;
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

export const CONFIG_FIELDS: { [K in keyof Config]: Setting<Config[K]> } = {
  httpPort: S.HTTP_PORT,
  httpHost: S.HTTP_HOST,
  publicUrl: S.PUBLIC_URL,
  trustedProxies: S.TRUSTED_PROXIES,
  rateLimits: S.RATE_LIMITS,
  rateAnonPerMin: S.RATE_ANON_PER_MIN,
  rateSendPerMin: S.RATE_SEND_PER_MIN,
  rateWaitPerMin: S.RATE_WAIT_PER_MIN,
  ratePingPerMin: S.RATE_PING_PER_MIN,
  maxRoomsPerAddress: S.MAX_ROOMS_PER_ADDRESS,
  maxTokensPerAddress: S.MAX_TOKENS_PER_ADDRESS,
  httpMaxPerAddress: S.HTTP_MAX_PER_ADDRESS,
  waitTimeoutS: S.WAIT_TIMEOUT_S,
  maxBodyBytes: S.MAX_BODY_BYTES,
  inviteTtlS: S.INVITE_TTL_S,
  listenerTtlS: S.LISTENER_TTL_S,
  messageTtlS: S.MESSAGE_TTL_S,
  tokenTtlS: S.TOKEN_TTL_S,
  queueMaxMessages: S.QUEUE_MAX_MESSAGES,
  queueMaxBytes: S.QUEUE_MAX_BYTES,
  queueMaxTotalBytes: S.QUEUE_MAX_TOTAL_BYTES,
  sweepIntervalS: S.SWEEP_INTERVAL_S,
  drainTimeoutS: S.DRAIN_TIMEOUT_S,
  logLevel: S.LOG_LEVEL,
  tls: S.PARLEY_TLS,
  stateUrl: S.STATE_URL,
  secret: S.PARLEY_SECRET,
  a2aDialAllow: S.A2A_DIAL_ALLOW,
  mcpWaitS: S.MCP_WAIT_S,
  mcpProgressS: S.MCP_PROGRESS_S,
  mcpMaxSessions: S.MCP_MAX_SESSIONS,
  mcpSessionIdleS: S.MCP_SESSION_IDLE_S,
};

export function loadConfig(env: Env = process.env): Config {
  const config = fromTable(CONFIG_FIELDS, env);
  // Several brokers on one store must hash tokens alike.
  if (config.stateUrl && config.secret.length < 32)
    throw new ConfigError('PARLEY_SECRET must be set to at least 32 characters when STATE_URL is shared: every broker hashes tokens with it');
  return config;
}
