/** The SSH broker's settings, from the environment, validated at start like the HTTP broker's. */
import { ConfigError, type Env, int, logLevel } from '../config.js';

export interface SshConfig {
  port: number;
  host: string;
  /** The HTTP broker this adapter is a client of (over the internal network in compose). */
  brokerUrl: string;
  hostKeyPath: string;
  /** Only for the hints printed to users: the name and port they reach this server at. */
  publicHost: string;
  publicPort: number;
  maxConnections: number;
  /** Concurrent connections from one address bucket (an IPv4 /24, an IPv6 /64), so one client cannot take them all. */
  maxPerAddress: number;
  /** From the TCP connection to the session's command (exec or shell); a connection slower than that is cut. */
  loginTimeoutMs: number;
  logLevel: string;
}

export function loadSshConfig(env: Env = process.env): SshConfig {
  const brokerUrl = (env.BROKER_URL ?? '').trim() || 'http://127.0.0.1:3000';
  let url: URL;
  try {
    url = new URL(brokerUrl);
  } catch {
    throw new ConfigError(`BROKER_URL must be an http(s) URL, got "${brokerUrl}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`BROKER_URL must be an http(s) URL, got "${brokerUrl}"`);
  return {
    port: int(env, 'SSH_PORT', 2222, 0, 65535),
    host: (env.SSH_HOST ?? '').trim() || '0.0.0.0',
    brokerUrl: url.href.replace(/\/$/, ''),
    hostKeyPath: (env.SSH_HOST_KEY_PATH ?? '').trim() || '/data/ssh/ssh_host_ed25519_key',
    publicHost: (env.PARLEY_DOMAIN ?? '').trim() || 'HOST',
    publicPort: int(env, 'SSH_PUBLIC_PORT', 2222, 0, 65535),
    maxConnections: int(env, 'SSH_MAX_CONNECTIONS', 500, 1, 100_000),
    maxPerAddress: int(env, 'SSH_MAX_PER_ADDRESS', 20, 1, 100_000),
    loginTimeoutMs: int(env, 'SSH_LOGIN_TIMEOUT_S', 20, 1, 3600) * 1000,
    logLevel: logLevel(env),
  };
}
