/** The SSH broker's settings, from the environment, validated at start like the HTTP broker's. */
import { ConfigError } from '../config.js';

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
  logLevel: string;
}

type Env = Record<string, string | undefined>;

function port(env: Env, name: string, def: number): number {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return def;
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) throw new ConfigError(`${name} must be a port number from 0 to 65535, got "${raw}"`);
  return Number(raw);
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
  const maxRaw = (env.SSH_MAX_CONNECTIONS ?? '').trim() || '500';
  if (!/^\d+$/.test(maxRaw) || Number(maxRaw) < 1) throw new ConfigError(`SSH_MAX_CONNECTIONS must be a whole number of at least 1, got "${maxRaw}"`);
  return {
    port: port(env, 'SSH_PORT', 2222),
    host: (env.SSH_HOST ?? '').trim() || '0.0.0.0',
    brokerUrl: url.href.replace(/\/$/, ''),
    hostKeyPath: (env.SSH_HOST_KEY_PATH ?? '').trim() || '/data/ssh/ssh_host_ed25519_key',
    publicHost: (env.PARLEY_DOMAIN ?? '').trim() || 'HOST',
    publicPort: port(env, 'SSH_PUBLIC_PORT', 2222),
    maxConnections: Number(maxRaw),
    logLevel: (env.LOG_LEVEL ?? '').trim() || 'info',
  };
}
