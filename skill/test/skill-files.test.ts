/** SKILL.md, the permission templates and the runner examples agree with each other and work. */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SCRIPTS, SKILL } from './agents.js';

const read = (p: string) => readFileSync(join(SKILL, p), 'utf8');
const skillMd = read('SKILL.md');
const scripts = readdirSync(SCRIPTS).filter((f) => f.endsWith('.sh') && f !== 'lib.sh');
const claude = JSON.parse(read('settings/claude.settings.json')).permissions;
const gemini = JSON.parse(read('settings/gemini.settings.json')).tools.allowed as string[];
const codex = read('settings/codex.rules');

describe('SKILL.md and the permission templates', () => {
  it('invokes every script as a plain `bash <path>` command, never behind an env assignment', () => {
    const invoked = new Set([...skillMd.matchAll(/bash ~\/\.claude\/skills\/parley\/scripts\/([a-z]+\.sh)/g)].map((m) => m[1]));
    expect([...invoked].sort()).toEqual([...scripts].sort());
    const commands = [...skillMd.matchAll(/`([^`\n]*scripts\/[a-z]+\.sh[^`\n]*)`/g), ...skillMd.matchAll(/^```\n([\s\S]*?)```/gm)].flatMap((m) => m[1].split('\n')).filter(Boolean);
    expect(commands.length).toBeGreaterThan(15);
    for (const c of commands) expect(c).toMatch(/^(bash ~\/\.claude\/skills\/parley\/scripts\/|node ~\/|mkdir )/);
  });

  it('the Claude Code rules match those invocations; leave, resume and headless always ask', () => {
    const rule = (s: string) => `Bash(bash ~/.claude/skills/parley/scripts/${s}:*)`;
    const asking = ['leave.sh', 'resume.sh', 'headless.sh'];
    expect([...claude.allow].sort()).toEqual(scripts.filter((s) => !asking.includes(s)).map(rule).sort());
    expect([...claude.ask].sort()).toEqual(asking.map(rule).sort());
  });

  it('Gemini CLI and Codex allow the same scripts at their own paths', () => {
    const allowed = claude.allow.map((r: string) => /scripts\/([a-z]+\.sh)/.exec(r)![1]).sort();
    expect(gemini.map((r) => /^run_shell_command\(bash ~\/\.gemini\/skills\/parley\/scripts\/([a-z]+\.sh)\)$/.exec(r)![1]).sort()).toEqual(allowed);
    const [allowRule, promptRule] = codex.split('prefix_rule(').slice(1);
    expect(allowRule).toContain('decision = "allow"');
    expect([...allowRule.matchAll(/"~\/\.codex\/skills\/parley\/scripts\/([a-z]+\.sh)"/g)].map((m) => m[1]).sort()).toEqual(allowed);
    expect(promptRule).toContain('decision = "prompt"');
  });

  it('every script is valid bash', () => {
    for (const f of [...readdirSync(SCRIPTS).map((s) => join(SCRIPTS, s)), ...readdirSync(join(SKILL, 'runners')).map((s) => join(SKILL, 'runners', s))]) {
      const r = spawnSync('bash', ['-n', f], { encoding: 'utf8' });
      expect({ f, err: r.stderr }).toEqual({ f, err: '' });
    }
  });
});

let tmp: string | undefined;
afterEach(() => tmp && rmSync(tmp, { recursive: true, force: true }));

describe('settings/merge.mjs', () => {
  it('adds the template rules and keeps everything the user had, idempotently, with a backup', () => {
    tmp = mkdtempSync(join(tmpdir(), 'parley-merge-'));
    const target = join(tmp, 'settings.json');
    const mine = { model: 'opus', permissions: { allow: ['Bash(npm test:*)'], deny: ['Bash(rm:*)'], defaultMode: 'default' } };
    writeFileSync(target, JSON.stringify(mine));
    const merge = () => spawnSync(process.execPath, [join(SKILL, 'settings', 'merge.mjs'), join(SKILL, 'settings', 'claude.settings.json'), target], { encoding: 'utf8' });
    expect(merge().stdout).toBe(`MERGED ${target}\n`);
    expect(merge().status).toBe(0);
    const merged = JSON.parse(readFileSync(target, 'utf8'));
    expect(merged.model).toBe('opus');
    expect(merged.permissions.deny).toEqual(['Bash(rm:*)']);
    expect(merged.permissions.defaultMode).toBe('default');
    expect(merged.permissions.allow).toEqual(['Bash(npm test:*)', ...claude.allow]);
    expect(merged.permissions.ask).toEqual(claude.ask);
    expect(existsSync(`${target}.bak`)).toBe(true);

    writeFileSync(target, '{ not json');
    const bad = merge();
    expect([bad.status, bad.stdout.split('\n')[0]]).toEqual([1, 'BAD_JSON']);
    expect(readFileSync(target, 'utf8')).toBe('{ not json'); // a broken file is left alone
  });
});

describe('runner examples', () => {
  it('each hands the CLI a prompt with the context and the message, and prints only its reply', () => {
    tmp = mkdtempSync(join(tmpdir(), 'parley-runners-'));
    // One fake CLI under four names: records its stdin, answers like the real one would.
    const fake = `#!/usr/bin/env bash
cat > "$FAKE_DIR/$(basename "$0").stdin"
while [ $# -gt 0 ]; do [ "$1" = --output-last-message ] && { echo "reply from codex [OVER]" > "$2"; echo "progress noise"; exit 0; }; shift; done
echo "reply from $(basename "$0") [OVER]"
`;
    for (const cli of ['claude', 'codex', 'gemini', 'ollama']) {
      writeFileSync(join(tmp, cli), fake);
      chmodSync(join(tmp, cli), 0o755);
    }
    const context = join(tmp, 'context.md');
    writeFileSync(context, '# Parley session "default": you are the host\nWALKIE-TALKIE RULES: …\n');
    for (const cli of ['claude', 'codex', 'gemini', 'ollama']) {
      const r = spawnSync('bash', [join(SKILL, 'runners', `${cli}.sh`)], {
        input: 'Which port does staging use?',
        encoding: 'utf8',
        env: { PATH: `${tmp}:${process.env.PATH}`, FAKE_DIR: tmp, PARLEY_CONTEXT: context, HOME: tmp },
      });
      expect({ cli, out: r.stdout.trim(), status: r.status }).toEqual({ cli, out: `reply from ${cli} [OVER]`, status: 0 });
      const prompt = readFileSync(join(tmp, `${cli}.stdin`), 'utf8');
      expect(prompt).toContain('you are the host');
      expect(prompt).toContain('Which port does staging use?');
    }
  });
});
