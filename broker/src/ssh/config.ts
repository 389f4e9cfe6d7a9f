/** The SSH broker's settings, from the environment, validated at start like the HTTP broker's (table in settings.ts). */
import { type Env, fromTable, publicUrlOrLocal, S, type Setting, type TlsMode, usesLocalCa } from '../settings.js';

export interface SshConfig {
  port: number;
  host: string;
  /** The HTTP broker this adapter is a client of (over the internal network in compose). */
  brokerUrl: string;
  hostKeyPath: string;
  /** Only for the hints printed to users: the base URL, name and SSH port they reach this server at. */
  publicUrl: string;
  publicHost: string;
  publicPort: number;
  /** Whether the hints must pass Caddy's local root certificate to curl. */
  localCa: boolean;
  maxConnections: number;
  /** Concurrent connections from one address bucket (an IPv4 /24, an IPv6 /64), so one client cannot take them all. */
  maxPerAddress: number;
  /** From the TCP connection to the session's command (exec or shell); a connection slower than that is cut. */
  loginTimeoutMs: number;
  logLevel: string;
}

type FromEnv = Omit<SshConfig, 'publicHost' | 'localCa'> & { tls: TlsMode };

export const SSH_CONFIG_FIELDS: { [K in keyof FromEnv]: Setting<FromEnv[K]> } = {
  port: S.SSH_PORT,
  host: S.SSH_HOST,
  brokerUrl: S.BROKER_URL,
  hostKeyPath: S.SSH_HOST_KEY_PATH,
  publicUrl: S.PUBLIC_URL,
  publicPort: S.SSH_PUBLIC_PORT,
  maxConnections: S.SSH_MAX_CONNECTIONS,
  maxPerAddress: S.SSH_MAX_PER_ADDRESS,
  loginTimeoutMs: S.SSH_LOGIN_TIMEOUT_S,
  logLevel: S.LOG_LEVEL,
  tls: S.PARLEY_TLS,
};

export function loadSshConfig(env: Env = process.env): SshConfig {
  const { tls, ...fields } = fromTable(SSH_CONFIG_FIELDS, env);
  // The table reads SSH_LOGIN_TIMEOUT_S in seconds; timers want milliseconds.
  const cfg = { ...fields, loginTimeoutMs: fields.loginTimeoutMs * 1000, publicUrl: publicUrlOrLocal(env) };
  return { ...cfg, publicHost: new URL(cfg.publicUrl).hostname, localCa: usesLocalCa(cfg.publicUrl, tls) };
}
