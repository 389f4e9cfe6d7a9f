/** install.sh: one command per runtime, paths rewritten for it, upgrades in place. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MANY_STEPS, onCleanup, SKILL } from './agents.js';

const RUNTIMES = ['claude', 'codex', 'gemini'] as const;
const TEMPLATE = { claude: 'claude.settings.json', codex: 'codex.rules', gemini: 'gemini.policy.toml' };
const sourceScripts = readdirSync(join(SKILL, 'scripts')).sort();

function tempHome() {
  const home = mkdtempSync(join(tmpdir(), 'parley-install-'));
  onCleanup(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

const install = (home: string, ...args: string[]) => {
  const r = spawnSync('bash', [join(SKILL, 'install.sh'), ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: home }, cwd: home });
  return { code: r.status, out: r.stdout, first: r.stdout.split('\n')[0] };
};

/** Every file under dir, as paths relative to it. */
const tree = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();

describe('install.sh', () => {
  it('installs for Claude Code, then upgrades in place: old scripts gone, nothing nested, the first settings backup kept', () => {
    const home = tempHome();
    const dest = join(home, '.claude', 'skills', 'parley');
    const settings = join(home, '.claude', 'settings.json');
    mkdirSync(join(home, '.claude'), { recursive: true });
    const mine = { model: 'opus', permissions: { allow: ['Bash(npm test:*)'] } };
    writeFileSync(settings, JSON.stringify(mine));

    const first = install(home, '--runtime', 'claude');
    expect([first.code, first.first]).toEqual([0, `INSTALLED runtime=claude dest=${dest}`]);
    const installed = tree(dest);
    expect(installed).toEqual(['SKILL.md', ...sourceScripts.map((s) => `scripts/${s}`), ...readdirSync(join(SKILL, 'runners')).map((r) => `runners/${r}`), 'settings/claude.settings.json', 'settings/merge.mjs', 'supervisor'].sort());
    expect(installed.some((f) => f.startsWith('test/') || f === 'install.sh')).toBe(false);
    const rules = JSON.parse(readFileSync(join(dest, 'settings', 'claude.settings.json'), 'utf8')).permissions;
    expect(JSON.parse(readFileSync(settings, 'utf8')).permissions.allow).toEqual(['Bash(npm test:*)', ...rules.allow]);

    // An older version left a script that no longer exists; the upgrade must not keep it.
    writeFileSync(join(dest, 'scripts', 'retired.sh'), 'echo old\n');
    const second = install(home, '--runtime', 'claude');
    expect([second.code, second.first]).toEqual([0, `INSTALLED runtime=claude dest=${dest}`]);
    expect(tree(dest)).toEqual(installed);
    expect(readdirSync(join(home, '.claude', 'skills'))).toEqual(['parley']);
    expect(JSON.parse(readFileSync(`${settings}.bak`, 'utf8'))).toEqual(mine);
    expect(JSON.parse(readFileSync(settings, 'utf8')).permissions.allow).toEqual(['Bash(npm test:*)', ...rules.allow]);
    expect(spawnSync(process.execPath, [join(dest, 'supervisor'), '--help'], { encoding: 'utf8' }).stdout).toMatch(/^usage: supervisor/);
  }, MANY_STEPS);

  for (const runtime of RUNTIMES) {
    it(`rewrites every skill path for ${runtime}, in SKILL.md and in its permission rules`, () => {
      const home = tempHome();
      expect(install(home, '--runtime', runtime).code).toBe(0);
      const dest = join(home, `.${runtime}`, 'skills', 'parley');
      const prefix = `~/.${runtime}/skills/parley`;
      const skillMd = readFileSync(join(dest, 'SKILL.md'), 'utf8');
      const template = readFileSync(join(dest, 'settings', TEMPLATE[runtime]), 'utf8');
      for (const text of [skillMd, template]) {
        const named = new Set([...text.matchAll(/~\/\\?\.\w+\/skills\/parley/g)].map((m) => m[0].replace('\\', '')));
        expect([...named]).toEqual([prefix]);
      }
      expect(skillMd).toContain(`bash ${prefix}/scripts/send.sh - <<'PARLEY_END'`);
      expect(template).toContain(`${prefix}/scripts/loop.sh`);
      const active = { claude: '.claude/settings.json', gemini: '.gemini/policies/parley.toml', codex: '.codex/rules/parley.rules' }[runtime];
      expect(readFileSync(join(home, active), 'utf8')).toContain(`${prefix}/scripts/send.sh`);
    });
  }

  it('names a custom destination as the runtimes will see it: from ~ under HOME, absolute elsewhere', () => {
    const home = tempHome();
    expect(install(home, '--runtime', 'codex', '--dest', join(home, 'agents', 'parley'), '--no-settings').code).toBe(0);
    expect(readFileSync(join(home, 'agents', 'parley', 'settings', 'codex.rules'), 'utf8')).toContain('"~/agents/parley/scripts/loop.sh"');
    expect(existsSync(join(home, '.codex'))).toBe(false); // --no-settings touches nothing else
    const elsewhere = tempHome();
    expect(install(home, '--runtime', 'gemini', '--dest', join(elsewhere, 'parley'), '--no-settings').code).toBe(0);
    expect(readFileSync(join(elsewhere, 'parley', 'SKILL.md'), 'utf8')).toContain(`bash ${elsewhere}/parley/scripts/send.sh - <<'PARLEY_END'`);
  });

  it('refuses a bad runtime and never replaces a folder that is not a Parley skill', () => {
    const home = tempHome();
    expect(install(home, '--runtime', 'vim').first).toBe('USAGE_ERROR');
    expect(install(home).first).toBe('USAGE_ERROR');
    const dest = join(home, 'precious');
    mkdirSync(dest);
    writeFileSync(join(dest, 'notes.txt'), 'mine');
    const r = install(home, '--runtime', 'claude', '--dest', dest);
    expect([r.code, r.first]).toEqual([1, 'DEST_NOT_PARLEY']);
    expect(readdirSync(dest)).toEqual(['notes.txt']);
    expect(install(home, '--runtime', 'claude', '--dest', join(home, 'with space')).first).toBe('USAGE_ERROR');
  });
});
