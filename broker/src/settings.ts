/**
 * Every setting Parley reads, declared once: name, default, check, meaning, section, and how
 * docker-compose.yml hands it to the service that reads it. `loadConfig()` (config.ts) and
 * `loadSshConfig()` (ssh/config.ts) are derived from this table; a test holds the README's
 * configuration tables, `.env.example` and `docker-compose.yml` to it.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import proxyaddr from 'proxy-addr';

export class ConfigError extends Error {}

export type Env = Record<string, string | undefined>;

/** The compose services whose process reads settings. */
export type Service = 'broker' | 'ssh' | 'caddy';

/** How docker-compose.yml gives a setting to the services that read it. */
export type ComposeUse =
  /** `NAME: ${NAME:-…}` in each service's environment, straight from .env. */
  | { pass: Service[] }
  /** Set in each service's environment from other settings (`how` says from what). */
  | { derived: Service[]; how: string }
  /** Used by compose itself (ports, network, build args), and passed to `pass` if any. */
  | { compose: string; pass?: Service[] }
  /** Deliberately not passed by docker-compose.yml (the reason), perhaps by an override file (`passedBy`). */
  | { notPassed: string; passedBy?: string };

export interface Setting<T = unknown> {
  name: string;
  section: 'broker' | 'ssh' | 'appliance';
  /** The default as the README and .env.example show it. */
  default: string;
  meaning: string;
  compose: ComposeUse;
  /** Check and convert a value; '' (unset or empty) gives the default. Throws ConfigError. */
  parse(raw: string, env: Env): T;
}

type Check<T> = Pick<Setting<T>, 'default' | 'parse'>;

const integer = (def: number, min: number, max: number): Check<number> => ({
  default: String(def),
  parse(raw) {
    if (raw === '') return def;
    if (!/^\d+$/.test(raw)) throw new Error(`must be a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`must be between ${min} and ${max}, got ${n}`);
    return n;
  },
});

const oneOf = <T extends string>(def: T, values: readonly T[]): Check<T> => ({
  default: def,
  parse(raw) {
    const v = (raw || def).toLowerCase() as T;
    if (!values.includes(v)) throw new Error(`must be one of ${values.join(', ')}, got "${raw}"`);
    return v;
  },
});

const onOff = (def: boolean): Check<boolean> => ({
  default: def ? 'on' : 'off',
  parse(raw) {
    const v = raw.toLowerCase();
    if (v === '') return def;
    if (['on', 'true', '1', 'yes'].includes(v)) return true;
    if (['off', 'false', '0', 'no'].includes(v)) return false;
    throw new Error(`must be "on" or "off", got "${raw}"`);
  },
});

const text = (def: string): Check<string> => ({ default: def, parse: (raw) => raw || def });

const port = (def: number) => integer(def, 1, 65535);

/** An absolute http(s) URL, kept as its origin (no trailing slash). */
function httpUrl(raw: string, bare: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`must be an absolute http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`must be an absolute http(s) URL, got "${raw}"`);
  if (bare && (url.pathname !== '/' || url.search || url.hash || url.username || url.password))
    throw new Error(`must be a scheme, host and port only (no path, query or user), got "${raw}"`);
  return bare ? url.origin : url.href.replace(/\/$/, '');
}

function hostname(raw: string): string {
  if (isIP(raw) || /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(raw)) return raw.toLowerCase();
  throw new Error(`must be a host name or IP address, got "${raw}"`);
}

function ipList(raw: string): string[] {
  if (raw === '') return [];
  return raw.split(',').map((s) => s.trim()).filter(Boolean).map((c) => {
    try {
      if (c.includes('/')) ipaddr.parseCIDR(c);
      else ipaddr.parse(c);
    } catch {
      throw new Error(`must be a comma-separated list of IPs or CIDRs, bad entry "${c}"`);
    }
    return c;
  });
}

function cidrList(raw: string): string[] {
  return ipList(raw).map((c) => {
    // Validate exactly as the HTTP adapter will compile it (proxy-addr refuses /0, for one).
    try {
      proxyaddr.compile([c]);
    } catch {
      throw new Error(`entry "${c}" is not accepted: trusting every address would let any client choose its rate-limit bucket`);
    }
    return c;
  });
}

function setting<T>(s: Setting<T>): Setting<T> {
  return s;
}

const perMinute = (name: string, def: number, meaning: string): Setting<number> =>
  ({ name, section: 'broker', ...integer(def, 1, 1_000_000), meaning, compose: { pass: ['broker'] } });

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const TLS_MODES = ['auto', 'internal'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

const HTTP_PORT = setting({
  name: 'HTTP_PORT', section: 'broker', ...integer(3000, 0, 65535),
  meaning: 'Port to listen on (`0` picks a free one).',
  compose: { notPassed: 'fixed at 3000: Caddy and the SSH broker reach the broker at broker:3000, and it is not published' },
});

/** The table, in the README's order. */
export const S = {
  HTTP_PORT,
  HTTP_HOST: setting({
    name: 'HTTP_HOST', section: 'broker', default: '0.0.0.0',
    parse(raw) {
      const host = raw || '0.0.0.0';
      if (host !== 'localhost' && !ipaddr.isValid(host)) throw new Error(`must be an IP address or "localhost", got "${host}"`);
      return host;
    },
    meaning: 'Address to bind.',
    compose: { notPassed: 'the broker must listen on the compose network, which the default does' },
  }),
  PUBLIC_URL: setting({
    // Unset, each door uses the address a request reached (the A2A door's cards), the start-up
    // line shows http://localhost:<HTTP_PORT> and the SSH broker's hints the same.
    name: 'PUBLIC_URL', section: 'broker', default: '',
    parse: (raw) => (raw ? httpUrl(raw, true) : ''),
    meaning: 'The external base URL agents use (scheme, host, port; no path), for hints and A2A cards. Unset: the address a request reached, and `http://localhost:<HTTP_PORT>` in the start-up line. Compose sets `https://PARLEY_DOMAIN:HTTPS_PUBLIC_PORT`.',
    compose: { derived: ['broker', 'ssh'], how: 'https://${PARLEY_DOMAIN}:${HTTPS_PUBLIC_PORT}, the address Caddy serves' },
  }),
  TRUSTED_PROXIES: setting({
    name: 'TRUSTED_PROXIES', section: 'broker', default: '', parse: cidrList,
    meaning: 'Comma-separated IPs/CIDRs whose `X-Forwarded-For` is believed (Caddy\'s network in compose). Anyone else\'s header is ignored.',
    compose: { derived: ['broker'], how: 'PARLEY_SUBNET, the compose network (Caddy and the SSH broker)' },
  }),
  RATE_LIMITS: setting({
    name: 'RATE_LIMITS', section: 'broker', ...onOff(true),
    meaning: '`off` disables every limit (local experiments, private deployments, benchmarks).',
    compose: { pass: ['broker'] },
  }),
  RATE_ANON_PER_MIN: perMinute('RATE_ANON_PER_MIN', 30, 'Requests per minute per client address bucket (IPv4 /24, IPv6 /64) on every endpoint except send/wait/ping.'),
  RATE_SEND_PER_MIN: perMinute('RATE_SEND_PER_MIN', 120, '`/send` per token per minute.'),
  RATE_WAIT_PER_MIN: perMinute('RATE_WAIT_PER_MIN', 240, '`/wait` per token per minute.'),
  RATE_PING_PER_MIN: perMinute('RATE_PING_PER_MIN', 120, '`/ping` per token per minute.'),
  MAX_ROOMS_PER_ADDRESS: setting({
    name: 'MAX_ROOMS_PER_ADDRESS', section: 'broker', ...integer(50, 1, 1_000_000),
    meaning: 'Open rooms created from one client address bucket (429 `too_many_rooms` above; with `RATE_LIMITS` on).',
    compose: { pass: ['broker'] },
  }),
  MAX_TOKENS_PER_ADDRESS: setting({
    name: 'MAX_TOKENS_PER_ADDRESS', section: 'broker', ...integer(500, 1, 1_000_000),
    meaning: 'Live tokens issued to one client address bucket (429 `too_many_tokens` above; a token lives until `TOKEN_TTL_S` unused; with `RATE_LIMITS` on).',
    compose: { pass: ['broker'] },
  }),
  HTTP_MAX_PER_ADDRESS: setting({
    name: 'HTTP_MAX_PER_ADDRESS', section: 'broker', ...integer(64, 1, 100_000),
    meaning: 'Concurrent HTTP connections from one address bucket (429 `too_many_connections` above; with `RATE_LIMITS` on). Connections from `TRUSTED_PROXIES` carry many clients, so for them the cap counts requests in progress (held waits included) per forwarded client address instead.',
    compose: { pass: ['broker'] },
  }),
  WAIT_TIMEOUT_S: setting({
    name: 'WAIT_TIMEOUT_S', section: 'broker', ...integer(110, 1, 3600),
    meaning: 'Longest `/wait`; `?timeout=` picks a shorter slice. Keep it under Caddy\'s 180 s upstream timeout.',
    compose: { pass: ['broker'] },
  }),
  MAX_BODY_BYTES: setting({
    name: 'MAX_BODY_BYTES', section: 'broker', ...integer(1024 * 1024, 1024, 64 * 1024 * 1024),
    meaning: 'Largest message (413 above); Caddy caps request bodies at the same size.',
    compose: { pass: ['broker', 'caddy'] },
  }),
  INVITE_TTL_S: setting({ name: 'INVITE_TTL_S', section: 'broker', ...integer(3600, 1, 30 * 86400), meaning: 'Life of an invite code.', compose: { pass: ['broker'] } }),
  LISTENER_TTL_S: setting({ name: 'LISTENER_TTL_S', section: 'broker', ...integer(86400, 1, 30 * 86400), meaning: 'Life of a listener code.', compose: { pass: ['broker'] } }),
  MESSAGE_TTL_S: setting({
    name: 'MESSAGE_TTL_S', section: 'broker', ...integer(3600, 1, 7 * 86400),
    meaning: 'How long an unread message waits before it expires (its sender is told).',
    compose: { pass: ['broker'] },
  }),
  TOKEN_TTL_S: setting({ name: 'TOKEN_TTL_S', section: 'broker', ...integer(86400, 1, 365 * 86400), meaning: 'A token expires after this long unused.', compose: { pass: ['broker'] } }),
  QUEUE_MAX_MESSAGES: setting({
    name: 'QUEUE_MAX_MESSAGES', section: 'broker', ...integer(100, 1, 100_000),
    meaning: 'Unread messages per participant before `/send` answers 429 `inbox_full`.',
    compose: { pass: ['broker'] },
  }),
  QUEUE_MAX_BYTES: setting({
    name: 'QUEUE_MAX_BYTES', section: 'broker', ...integer(8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    meaning: 'Unread bytes per participant, likewise.',
    compose: { pass: ['broker'] },
  }),
  QUEUE_MAX_TOTAL_BYTES: setting({
    name: 'QUEUE_MAX_TOTAL_BYTES', section: 'broker', ...integer(256 * 1024 * 1024, 1024 * 1024, 64 * 1024 * 1024 * 1024),
    meaning: 'Unread bytes across every participant (as stored: 2 per character for text beyond Latin-1), shared by every broker on one `STATE_URL`; above it `/send` answers 503 `broker_full` with `Retry-After` and queues nothing.',
    compose: { pass: ['broker'] },
  }),
  SWEEP_INTERVAL_S: setting({
    name: 'SWEEP_INTERVAL_S', section: 'broker', ...integer(30, 1, 3600),
    meaning: 'How often expired tokens and codes are swept (through their expiry indexes).',
    compose: { pass: ['broker'] },
  }),
  DRAIN_TIMEOUT_S: setting({
    name: 'DRAIN_TIMEOUT_S', section: 'broker', ...integer(10, 0, 600),
    meaning: 'On SIGTERM, how long in-flight responses may take before connections are cut.',
    compose: { pass: ['broker'] },
  }),
  STATE_URL: setting({
    name: 'STATE_URL', section: 'broker', default: 'memory',
    parse(raw) {
      if (raw === '' || raw === 'memory') return '';
      if (!/^rediss?:\/\/[^\s]+$/.test(raw)) throw new Error(`must be "memory" or a redis:// URL, got "${raw.slice(0, 80)}"`);
      return raw;
    },
    meaning: 'Where rooms live: `memory` (this process: sql.js + memory, gone at restart) or `redis://host:port` shared by several brokers (see [Several brokers](#several-brokers-one-set-of-rooms)).',
    compose: { notPassed: 'the one-broker appliance keeps rooms in memory; docker-compose.redis.yml sets redis://redis:6379', passedBy: 'docker-compose.redis.yml' },
  }),
  PARLEY_SECRET: setting({
    name: 'PARLEY_SECRET', section: 'broker', default: '',
    // Not trimmed away: a secret is taken as given (its length is checked with STATE_URL).
    parse: (raw, env) => env.PARLEY_SECRET ?? raw,
    meaning: 'Hashing key for tokens and codes, at least 32 characters; required with a shared `STATE_URL` so every broker hashes alike. Without it a key is made fresh at every boot.',
    compose: { notPassed: 'only several brokers need it: docker-compose.redis.yml passes it from .env', passedBy: 'docker-compose.redis.yml' },
  }),
  A2A_DIAL_ALLOW: setting({
    name: 'A2A_DIAL_ALLOW', section: 'broker', default: '', parse: ipList,
    meaning: 'Comma-separated IPs/CIDRs that `POST /a2a/dial` may reach although they are not public (loopback, private, link-local). Everything else non-public is refused.',
    compose: { pass: ['broker'] },
  }),
  MCP_WAIT_S: setting({
    name: 'MCP_WAIT_S', section: 'broker', ...integer(50, 1, 3600),
    meaning: 'Default wait slice of the MCP tools (keep it under 60 s).',
    compose: { pass: ['broker'] },
  }),
  MCP_PROGRESS_S: setting({
    name: 'MCP_PROGRESS_S', section: 'broker', ...integer(5, 1, 600),
    meaning: 'Interval of MCP progress notifications during a wait.',
    compose: { pass: ['broker'] },
  }),
  MCP_MAX_SESSIONS: setting({
    name: 'MCP_MAX_SESSIONS', section: 'broker', ...integer(1000, 1, 1_000_000),
    meaning: 'MCP sessions open at once (503 `too_many_sessions` above).',
    compose: { pass: ['broker'] },
  }),
  MCP_SESSION_IDLE_S: setting({
    name: 'MCP_SESSION_IDLE_S', section: 'broker', ...integer(3600, 1, 30 * 86400),
    meaning: 'An MCP session without a request for this long ends and leaves its room.',
    compose: { pass: ['broker'] },
  }),
  LOG_LEVEL: setting({
    name: 'LOG_LEVEL', section: 'broker', ...oneOf('info', LOG_LEVELS),
    meaning: '`fatal` … `trace`, or `silent` (both brokers).',
    compose: { pass: ['broker', 'ssh'] },
  }),

  BROKER_URL: setting({
    name: 'BROKER_URL', section: 'ssh', default: 'http://127.0.0.1:3000',
    parse: (raw) => httpUrl(raw || 'http://127.0.0.1:3000', false),
    meaning: 'The HTTP broker the SSH broker is a client of.',
    compose: { derived: ['ssh'], how: 'http://broker:3000, over the compose network' },
  }),
  SSH_PORT: setting({
    name: 'SSH_PORT', section: 'ssh', ...integer(2222, 0, 65535),
    meaning: 'Port the SSH broker listens on.',
    compose: { notPassed: 'fixed at 2222 in the container; SSH_PUBLIC_PORT picks the host port' },
  }),
  SSH_HOST: setting({
    name: 'SSH_HOST', section: 'ssh', ...text('0.0.0.0'),
    meaning: 'Address the SSH broker binds.',
    compose: { notPassed: 'it must listen on the container\'s interfaces, which the default does' },
  }),
  SSH_HOST_KEY_PATH: setting({
    name: 'SSH_HOST_KEY_PATH', section: 'ssh', ...text('/data/ssh/ssh_host_ed25519_key'),
    meaning: 'Host key, made on first start.',
    compose: { notPassed: 'the default lies in the ssh_host_key volume, which is what keeps the key across upgrades' },
  }),
  SSH_MAX_CONNECTIONS: setting({
    name: 'SSH_MAX_CONNECTIONS', section: 'ssh', ...integer(500, 1, 100_000),
    meaning: 'Concurrent SSH connections.',
    compose: { pass: ['ssh'] },
  }),
  SSH_MAX_PER_ADDRESS: setting({
    name: 'SSH_MAX_PER_ADDRESS', section: 'ssh', ...integer(20, 1, 100_000),
    meaning: 'Concurrent SSH connections from one address (an IPv4 /24 or IPv6 /64, as for the rate limits), so one client cannot take every slot. Where Docker\'s userland proxy hides client addresses, every client shares one.',
    compose: { pass: ['ssh'] },
  }),
  SSH_LOGIN_TIMEOUT_S: setting({
    name: 'SSH_LOGIN_TIMEOUT_S', section: 'ssh', ...integer(20, 1, 3600),
    meaning: 'From connecting to sending the command (or asking for a shell); a connection that takes longer is cut, whichever step it stalls at.',
    compose: { pass: ['ssh'] },
  }),

  PARLEY_DOMAIN: setting({
    name: 'PARLEY_DOMAIN', section: 'appliance', default: 'localhost',
    parse: (raw) => hostname(raw || 'localhost'),
    meaning: 'The name agents use: Caddy\'s site address and the host of `PUBLIC_URL`.',
    compose: { compose: 'the host of PUBLIC_URL', pass: ['caddy'] },
  }),
  PARLEY_TLS: setting({
    name: 'PARLEY_TLS', section: 'appliance', ...oneOf<TlsMode>('auto', TLS_MODES),
    meaning: '`auto` (ACME for a public name; Caddy\'s local CA for localhost and IPs) or `internal` (Caddy\'s local CA, for LAN names).',
    compose: { pass: ['caddy', 'broker', 'ssh'] },
  }),
  PARLEY_SUBNET: setting({
    name: 'PARLEY_SUBNET', section: 'appliance', default: '10.203.77.0/24',
    parse(raw) {
      const v = raw || '10.203.77.0/24';
      if (!ipaddr.isValidCIDR(v)) throw new Error(`must be a CIDR such as 10.203.77.0/24, got "${raw}"`);
      return v;
    },
    meaning: 'The compose network, which is also `TRUSTED_PROXIES`.',
    compose: { compose: 'the network\'s subnet, and TRUSTED_PROXIES' },
  }),
  HTTP_PUBLIC_PORT: setting({
    name: 'HTTP_PUBLIC_PORT', section: 'appliance', ...port(80),
    meaning: 'Host port for plain HTTP (ACME challenges and the redirect to HTTPS).',
    compose: { compose: 'the published port; Caddy listens on the same one', pass: ['caddy'] },
  }),
  HTTPS_PUBLIC_PORT: setting({
    name: 'HTTPS_PUBLIC_PORT', section: 'appliance', ...port(443),
    meaning: 'Host port for HTTPS (and HTTP/3 over UDP).',
    compose: { compose: 'the published port and the port of PUBLIC_URL; Caddy listens on the same one', pass: ['caddy'] },
  }),
  SSH_PUBLIC_PORT: setting({
    name: 'SSH_PUBLIC_PORT', section: 'appliance', ...port(2222),
    meaning: 'Host port for SSH, also shown in the SSH broker\'s hints.',
    compose: { compose: 'the published port', pass: ['ssh'] },
  }),
  NODE_VERSION: setting({
    name: 'NODE_VERSION', section: 'appliance', ...integer(22, 20, 99),
    meaning: 'Node version of the broker image (20 is the oldest supported).',
    compose: { compose: 'the broker image\'s build argument' },
  }),
};

export const SETTINGS: Setting[] = Object.values(S);

/** The raw, trimmed value of a setting ('' when unset). */
function read(env: Env, name: string): string {
  return (env[name] ?? '').trim();
}

/** PUBLIC_URL, or where a broker on this machine answers when it is unset. */
export function publicUrlOrLocal(env: Env): string {
  return value(S.PUBLIC_URL, env) || `http://localhost:${value(HTTP_PORT, env)}`;
}

/** Check and convert one setting; a bad value is a ConfigError naming the setting. */
export function value<T>(s: Setting<T>, env: Env): T {
  try {
    return s.parse(read(env, s.name), env);
  } catch (e) {
    throw new ConfigError(`${s.name} ${(e as Error).message}`);
  }
}

/** A config object from a field → setting map, each value checked. */
export function fromTable<C>(fields: { [K in keyof C]: Setting<C[K]> }, env: Env): C {
  return Object.fromEntries(Object.entries(fields).map(([k, s]) => [k, value(s as Setting, env)])) as C;
}

/** Whether clients must be given Caddy's local root certificate to reach `publicUrl`. */
export function usesLocalCa(publicUrl: string, tls: TlsMode): boolean {
  if (!publicUrl) return false;
  const url = new URL(publicUrl);
  if (url.protocol !== 'https:') return false;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return tls === 'internal' || host === 'localhost' || host.endsWith('.localhost') || isIP(host) !== 0;
}

// Names no public CA will certify, so ACME (PARLEY_TLS=auto) cannot succeed for them.
const PRIVATE_SUFFIXES = ['lan', 'local', 'home', 'internal', 'intranet', 'corp', 'localdomain', 'home.arpa', 'test', 'example', 'invalid'];

/** A warning with the fix when PUBLIC_URL's name cannot get a certificate the way PARLEY_TLS asks. */
export function tlsWarning(publicUrl: string, tls: TlsMode): string | undefined {
  if (!publicUrl) return undefined;
  const url = new URL(publicUrl);
  if (url.protocol !== 'https:' || tls === 'internal' || usesLocalCa(publicUrl, tls)) return undefined;
  const host = url.hostname;
  const single = !host.includes('.');
  if (!single && !PRIVATE_SUFFIXES.some((s) => host.endsWith(`.${s}`))) return undefined;
  return `${host} is ${single ? 'a single-label name' : 'a private name'} that no public CA will certify, so Caddy has no certificate for it and clients get "tlsv1 alert internal error": set PARLEY_TLS=internal in .env (Caddy's local CA) and run docker compose up -d`;
}
