/**
 * The settings table (broker/src/settings.ts) against everything that repeats it: the README's
 * configuration tables, .env.example and docker-compose.yml (who gets which setting), and the
 * checks themselves (PUBLIC_URL, the TLS warning).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CONFIG_FIELDS, loadConfig } from '../src/config.js';
import { ConfigError, type Service, SETTINGS, type Setting, tlsWarning, usesLocalCa, value } from '../src/settings.js';
import { SSH_CONFIG_FIELDS } from '../src/ssh/config.js';

const file = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const byName = new Map(SETTINGS.map((s) => [s.name, s]));

/** README rows `| \`NAME\` | default | meaning |` under each `### ` heading of the Configuration section. */
function readmeRows(): Map<string, { section: string; default: string }> {
  const readme = file('README.md');
  const section = readme.slice(readme.indexOf('\n## Configuration\n'), readme.indexOf('\n## ', readme.indexOf('\n## Configuration\n') + 1));
  const rows = new Map<string, { section: string; default: string }>();
  let heading = '';
  for (const line of section.split('\n')) {
    if (line.startsWith('### ')) heading = line.slice(4).trim();
    const m = /^\| `([A-Z0-9_]+)` \| (.*?) \| .* \|$/.exec(line);
    if (!m) continue;
    expect(rows.has(m[1]), `${m[1]} appears twice in the README`).toBe(false);
    const def = m[2] === '*(none)*' ? '' : /^`(.*)`$/.exec(m[2])?.[1];
    rows.set(m[1], { section: heading, default: def ?? `unparsed: ${m[2]}` });
  }
  return rows;
}

const HEADINGS: Record<Setting['section'], string> = { broker: 'Broker', ssh: 'SSH broker', appliance: 'Appliance' };

/** Which settings each compose service's process reads: the brokers from their field tables, Caddy from its files. */
function readers(): Record<Service, Set<string>> {
  const caddyFiles = file('Caddyfile') + file('proxy/healthcheck.sh');
  return {
    broker: new Set(Object.values(CONFIG_FIELDS).map((s) => s.name)),
    ssh: new Set(Object.values(SSH_CONFIG_FIELDS).map((s) => s.name)),
    caddy: new Set(SETTINGS.filter((s) => caddyFiles.includes(`{$${s.name}`) || caddyFiles.includes(`\${${s.name}`)).map((s) => s.name)),
  };
}

function composeUse(s: Setting): { passed: Service[]; derived: Service[] } {
  const c = s.compose;
  if ('pass' in c && !('compose' in c)) return { passed: c.pass, derived: [] };
  if ('compose' in c) return { passed: c.pass ?? [], derived: [] };
  if ('derived' in c) return { passed: [], derived: c.derived };
  return { passed: [], derived: [] };
}

/** Whether an override file passes the setting on from .env (`${NAME…}`). */
function fromEnvByOverride(s: Setting): boolean {
  return 'passedBy' in s.compose && !!s.compose.passedBy && file(s.compose.passedBy).includes(`\${${s.name}`);
}

describe('settings table', () => {
  it('every setting has a README row with the same default, in its section, and the README lists nothing else', () => {
    const rows = readmeRows();
    for (const s of SETTINGS) {
      expect(rows.get(s.name), `${s.name} in the README`).toEqual({ section: HEADINGS[s.section], default: s.default });
    }
    expect([...rows.keys()].filter((n) => !byName.has(n))).toEqual([]);
  });

  it('every default passes its own check, and an empty value means the default', () => {
    for (const s of SETTINGS) {
      if (s.default.includes('<')) continue; // derived from another setting (PUBLIC_URL)
      expect(value(s, { [s.name]: s.default }), s.name).toEqual(value(s, {}));
    }
  });

  it('an override file that passes a setting docker-compose.yml leaves out names it in a service environment', () => {
    for (const s of SETTINGS) {
      if (!('passedBy' in s.compose) || !s.compose.passedBy) continue;
      const services = Object.values((parseYaml(file(s.compose.passedBy)) as { services: Record<string, { environment?: Record<string, string> }> }).services);
      expect(services.some((svc) => svc.environment && s.name in svc.environment), `${s.name} in ${s.compose.passedBy}`).toBe(true);
    }
  });

  it('.env.example names every setting: the ones compose passes as NAME=default-or-empty, the ones it sets itself in a comment', () => {
    const lines = file('.env.example').split('\n');
    const assigned = new Map(lines.filter((l) => /^[A-Z0-9_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const comments = lines.filter((l) => l.startsWith('#')).join('\n');
    for (const s of SETTINGS) {
      const { passed } = composeUse(s);
      if (passed.length > 0 || 'compose' in s.compose || fromEnvByOverride(s)) {
        expect(assigned.has(s.name), `${s.name}= in .env.example`).toBe(true);
        expect(['', s.default], `${s.name}'s value in .env.example`).toContain(assigned.get(s.name));
      } else {
        expect(assigned.has(s.name), `${s.name} is set by compose, so .env.example must not offer it`).toBe(false);
        expect(comments, `${s.name} explained in .env.example`).toMatch(new RegExp(`^# (.*, )?${s.name}\\b`, 'm'));
      }
    }
    expect([...assigned.keys()].filter((n) => !byName.has(n) && n !== 'COMPOSE_PROJECT_NAME')).toEqual([]);
  });

  it('docker-compose.yml gives each service exactly the settings its process reads, passed through or derived as the table says', () => {
    const raw = file('docker-compose.yml');
    const compose = parseYaml(raw) as { services: Record<Service, { environment?: Record<string, string> }> };
    const read = readers();
    for (const service of ['broker', 'ssh', 'caddy'] as Service[]) {
      const env = compose.services[service].environment ?? {};
      const expected = [...read[service]].filter((n) => !('notPassed' in byName.get(n)!.compose)).sort();
      expect(Object.keys(env).sort(), `${service}'s environment`).toEqual(expected);
      for (const name of expected) {
        const s = byName.get(name)!;
        const { passed, derived } = composeUse(s);
        const v = String(env[name]);
        if (passed.includes(service)) {
          // Straight from .env, with the table's default or none.
          const m = new RegExp(`^\\$\\{${name}(?::-(.*))?\\}$`).exec(v);
          expect(m, `${service}.${name} = ${v} passes ${name} through`).not.toBeNull();
          expect(['', s.default], `${service}.${name}'s default`).toContain(m![1] ?? '');
        } else {
          expect(derived, `${name}: the table says how compose gives it to ${service}`).toContain(service);
          expect(v, `${service}.${name} is derived, not read from .env`).not.toContain(`\${${name}`);
        }
      }
    }
    // Each setting's declared services are exactly its readers; compose-level ones are used by compose.
    for (const s of SETTINGS) {
      const { passed, derived } = composeUse(s);
      const readBy = (['broker', 'ssh', 'caddy'] as Service[]).filter((svc) => read[svc].has(s.name));
      if ('notPassed' in s.compose) expect(s.compose.notPassed.length, `${s.name}: why it is not passed`).toBeGreaterThan(10);
      else expect([...passed, ...derived].sort(), `${s.name}: the services that read it`).toEqual(readBy.sort());
      if ('compose' in s.compose) expect(raw, `${s.name} used by compose`).toContain(`\${${s.name}:-${s.default}}`);
    }
  });
});

describe('PUBLIC_URL', () => {
  it('is empty when unset (doors use the address a request reached), and kept as an origin', () => {
    expect(loadConfig({}).publicUrl).toBe('');
    expect(loadConfig({ HTTP_PORT: '8080' }).publicUrl).toBe('');
    expect(loadConfig({ PUBLIC_URL: 'https://parley.lan:443/' }).publicUrl).toBe('https://parley.lan');
    expect(loadConfig({ PUBLIC_URL: 'https://Parley.LAN:8443' }).publicUrl).toBe('https://parley.lan:8443');
  });

  it.each(['parley.lan', '/relative', 'ftp://parley.lan', 'https://parley.lan/api', 'https://parley.lan/?x=1', 'https://u:p@parley.lan', 'https://parley.lan/#top'])(
    'refuses %s with a ConfigError naming PUBLIC_URL',
    (url) => {
      expect(() => loadConfig({ PUBLIC_URL: url })).toThrow(ConfigError);
      expect(() => loadConfig({ PUBLIC_URL: url })).toThrow(/^PUBLIC_URL must be/);
    },
  );
});

describe('TLS names', () => {
  it.each([
    ['https://parley.lan', 'auto', /parley\.lan is a private name[^]*set PARLEY_TLS=internal/],
    ['https://parley.home.arpa:8443', 'auto', /private name/],
    ['https://parley:8443', 'auto', /parley is a single-label name[^]*PARLEY_TLS=internal/],
  ] as const)('warns with the fix when %s cannot get a certificate with PARLEY_TLS=%s', (url, tls, warning) => {
    expect(tlsWarning(url, tls)).toMatch(warning);
    expect(tlsWarning(url, tls)).toContain('tlsv1 alert internal error');
  });

  it.each([
    ['https://parley.lan', 'internal'],
    ['https://parley.example.com', 'auto'],
    ['https://localhost:8443', 'auto'],
    ['https://192.168.1.10', 'auto'],
    ['http://parley.lan:3000', 'auto'],
  ] as const)('stays quiet for %s with PARLEY_TLS=%s', (url, tls) => {
    expect(tlsWarning(url, tls)).toBeUndefined();
  });

  it('knows which names use Caddy\'s local CA', () => {
    expect(usesLocalCa('https://parley.lan', 'internal')).toBe(true);
    expect(usesLocalCa('https://localhost:8443', 'auto')).toBe(true);
    expect(usesLocalCa('https://[::1]:8443', 'auto')).toBe(true);
    expect(usesLocalCa('https://10.0.0.5', 'auto')).toBe(true);
    expect(usesLocalCa('https://parley.example.com', 'auto')).toBe(false);
    expect(usesLocalCa('http://localhost:3000', 'internal')).toBe(false);
  });
});
