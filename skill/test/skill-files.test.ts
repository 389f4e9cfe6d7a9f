/** SKILL.md, the permission templates and the runner examples agree with each other and work. */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SCRIPTS, SKILL } from './agents.js';

const read = (p: string) => readFileSync(join(SKILL, p), 'utf8');
const skillMd = read('SKILL.md');
const scripts = readdirSync(SCRIPTS).filter((f) => f.endsWith('.sh') && f !== 'lib.sh');
const claude = JSON.parse(read('settings/claude.settings.json')).permissions;
const geminiToml = read('settings/gemini.policy.toml');
const codexMd = read('settings/codex.rules');

/** SKILL.md's commands: each code block's or inline code's command line (a heredoc's body left out). */
function documentedCommands(md: string): string[] {
  const blocks = [...md.matchAll(/^```\n([\s\S]*?)```/gm)].flatMap((m) => {
    const lines = m[1].split('\n').filter(Boolean);
    const out: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      out.push(lines[i]);
      const heredoc = /<<'(\w+)'$/.exec(lines[i]);
      if (heredoc) while (i < lines.length && lines[i] !== heredoc[1]) i++;
    }
    return out;
  });
  return [...blocks, ...[...md.matchAll(/`([^`\n]*scripts\/[a-z]+\.sh[^`\n]*)`/g)].map((m) => m[1])];
}

// How each runtime matches a rule, as its documentation describes: Claude Code's `Bash(P:*)` and
// Gemini CLI's `run_shell_command(P)` take P and then a space or the end; Codex compares words.
// A heredoc command is matched on its first line.
const prefixMatch = (cmd: string, p: string) => cmd === p || cmd.startsWith(`${p} `);
const claudeRule = (rule: string) => /^Bash\((.*):\*\)$/.exec(rule)![1];
const codexRules = (rules: string) =>
  rules
    .split('prefix_rule(')
    .slice(1)
    .map((r) => {
      const pattern = /pattern = (\[[\s\S]*?\]),\n    decision/.exec(r)![1].replace(/,(\s*\])/g, '$1');
      return { pattern: JSON.parse(pattern) as (string | string[])[], decision: /decision = "(\w+)"/.exec(r)![1] };
    });
const codexMatch = (cmd: string, pattern: (string | string[])[]) => {
  const words = cmd.split(/ +/);
  return pattern.every((p, i) => (Array.isArray(p) ? p.includes(words[i]) : p === words[i]));
};
// Gemini CLI's policy rules (its TOML, read just enough): each [[rule]]'s prefixes or regex and decision.
const geminiRules = (toml: string) =>
  toml
    .split('[[rule]]')
    .slice(1)
    .map((r) => ({
      prefixes: [.../commandPrefix = \[([\s\S]*?)\]/.exec(r)?.[1].matchAll(/"([^"]+)"/g) ?? []].map((m) => m[1]),
      regex: /commandRegex = '''(.*)'''/.exec(r)?.[1],
      decision: /decision = "(\w+)"/.exec(r)![1],
      priority: Number(/priority = (\d+)/.exec(r)![1]),
      allowRedirection: /allowRedirection = true/.test(r),
    }));
/** A Gemini CLI rule matches as its policy engine does: against the JSON of the tool call's arguments. */
const geminiMatch = (command: string, rule: ReturnType<typeof geminiRules>[number]) =>
  rule.regex ? new RegExp(`"command":"${rule.regex}`).test(JSON.stringify({ command })) : rule.prefixes.some((p) => prefixMatch(command, p));
const rewrite = (cmd: string, runtime: string) => cmd.replace(/~\/\.claude\/skills\/parley/g, `~/.${runtime}/skills/parley`);

describe('SKILL.md and the permission templates', () => {
  const commands = documentedCommands(skillMd);

  it('invokes every script as a plain `bash <path>` command, never behind an env assignment', () => {
    const invoked = new Set([...skillMd.matchAll(/bash ~\/\.claude\/skills\/parley\/scripts\/([a-z]+\.sh)/g)].map((m) => m[1]));
    expect([...invoked].sort()).toEqual([...scripts].sort());
    expect(commands.length).toBeGreaterThan(15);
    for (const c of commands) expect(c).toMatch(/^(bash ~\/\.claude\/skills\/parley\/scripts\/|node ~\/)/);
  });

  it('passes a message only one way: `-` and a quoted heredoc, never quoted text in the arguments', () => {
    const messaging = commands.filter((c) => /scripts\/(send|loop)\.sh /.test(c) && !/^bash \S+loop\.sh( --\w+ \w+)*$/.test(c));
    expect(messaging.filter((c) => c.endsWith("<<'PARLEY_END'")).length).toBeGreaterThanOrEqual(3);
    for (const c of messaging) expect(c).toMatch(/^bash ~\/\.claude\/skills\/parley\/scripts\/(send|loop)\.sh - (…|.*<<'PARLEY_END')/);
    for (const c of commands.filter((c) => c.startsWith('bash '))) expect(c).not.toMatch(/"/);
  });

  it('every documented command is allowed or asks in each runtime, exactly as written; a message in the arguments is not allowed', () => {
    const allow = { claude: claude.allow.map(claudeRule) };
    const ask = claude.ask.map(claudeRule);
    const codex = codexRules(codexMd);
    const gemini = geminiRules(geminiToml);
    // Gemini CLI decides on the whole command, a heredoc's body included: the highest-priority rule
    // that matches, and a heredoc (a redirection to it) asks unless that rule allows redirection.
    const byPriority = [...gemini].sort((a, b) => b.priority - a.priority);
    const geminiDecision = (c: string) => {
      const heredoc = c.endsWith("<<'PARLEY_END'");
      const whole = rewrite(heredoc ? `${c}\nThe build is green, it's \`done\` > \"$HOME\" [OVER]\nPARLEY_END` : c, 'gemini');
      const rule = byPriority.find((r) => geminiMatch(whole, r));
      return rule && heredoc && rule.decision === 'allow' && !rule.allowRedirection ? 'ask_user' : rule?.decision;
    };
    const scriptCommands = commands.filter((c) => c.startsWith('bash ')).map((c) => c.replace(/ on\|off$/, ' on').replace(/ …$/, ''));
    for (const c of scriptCommands) {
      const asking = /(leave|resume|headless)\.sh/.test(c);
      expect({ c, claude: (asking ? ask : allow.claude).some((p: string) => prefixMatch(c, p)) }).toEqual({ c, claude: true });
      expect({ c, gemini: geminiDecision(c) }).toEqual({ c, gemini: asking ? 'ask_user' : 'allow' });
      const codexDecision = codex.find((r) => codexMatch(rewrite(c, 'codex'), r.pattern))?.decision;
      expect({ c, codex: codexDecision }).toEqual({ c, codex: asking ? 'prompt' : 'allow' });
    }
    const quoted = 'bash ~/.claude/skills/parley/scripts/send.sh "the build is green [STANDBY]"';
    expect(allow.claude.some((p: string) => prefixMatch(quoted, p))).toBe(false);
    expect(codex.some((r) => codexMatch(rewrite(quoted, 'codex'), r.pattern))).toBe(false);
    // Gemini CLI also checks a heredoc command's first line alone, so `send.sh` itself is allowed
    // there; the script refuses a message in its arguments (literal-messages.test.ts).
    // A command after a heredoc that ended early is not covered by the heredoc rule, and no rule
    // allows it when Gemini CLI checks it alone.
    const early = rewrite("bash ~/.claude/skills/parley/scripts/send.sh - <<'PARLEY_END'\nhi [OVER]\nPARLEY_END\ntouch /tmp/x", 'gemini');
    expect(gemini.filter((r) => r.regex).some((r) => geminiMatch(early, r))).toBe(false);
    expect(gemini.some((r) => geminiMatch('touch /tmp/x', r))).toBe(false);
  });

  it('the Claude Code rules name every script; leave, resume and headless always ask', () => {
    const rule = (s: string) => `Bash(bash ~/.claude/skills/parley/scripts/${s === 'send.sh' ? 'send.sh -' : s}:*)`;
    const asking = ['leave.sh', 'resume.sh', 'headless.sh'];
    expect([...claude.allow].sort()).toEqual(scripts.filter((s) => !asking.includes(s)).map(rule).sort());
    expect([...claude.ask].sort()).toEqual(asking.map(rule).sort());
  });

  it('Gemini CLI and Codex allow the same scripts at their own paths', () => {
    const allowed = claude.allow.map((r: string) => /scripts\/([a-z]+\.sh)/.exec(r)![1]).sort();
    const gemini = geminiRules(geminiToml);
    expect(gemini.map((r) => r.decision)).toEqual(['allow', 'allow', 'ask_user']);
    expect(gemini[0].prefixes.map((p) => /^bash ~\/\.gemini\/skills\/parley\/scripts\/([a-z]+\.sh)$/.exec(p)![1]).sort()).toEqual(allowed);
    expect(gemini[2].prefixes.map((p) => /scripts\/([a-z]+\.sh)$/.exec(p)![1]).sort()).toEqual(['headless.sh', 'leave.sh', 'resume.sh']);
    const rules = codexRules(codexMd);
    expect(rules.map((r) => r.decision)).toEqual(['allow', 'allow', 'prompt']);
    const codexAllowed = rules.filter((r) => r.decision === 'allow').flatMap((r) => [r.pattern[1]].flat().map((p) => /scripts\/([a-z]+\.sh)$/.exec(p)![1]));
    expect(codexAllowed.sort()).toEqual(allowed);
  });

  it('the runner contract is written down in SKILL.md, the README and supervisor --help', () => {
    const readme = readFileSync(join(SKILL, '..', 'README.md'), 'utf8');
    const help = spawnSync(process.execPath, [join(SKILL, 'supervisor'), '--help'], { encoding: 'utf8' }).stdout;
    for (const [name, text] of [['SKILL.md', skillMd], ['README.md', readme], ['--help', help]])
      for (const word of ['stdin', 'PARLEY_SIGNAL', 'PARLEY_PARTNER', 'PARLEY_ROLE', 'PARLEY_SESSION', 'PARLEY_CONTEXT'])
        expect({ name, word, found: text.includes(word) }).toEqual({ name, word, found: true });
  });

  it('SKILL.md says who speaks first, how to end, when silence is long, and who closes a listener room', () => {
    for (const phrase of [
      'The host speaks first',
      'Never answer a STANDBY with another STANDBY',
      'close with `send.sh`, not `loop.sh`',
      '`last_seen_ms` is over `600000`',
      "The room's creator leaving closes the room",
      'the caller, who attached with the listener code',
      "rule 7 of the broker's rules",
    ])
      expect({ phrase, found: skillMd.includes(phrase) }).toEqual({ phrase, found: true });
  });

  it('every script is valid bash', () => {
    for (const f of [...readdirSync(SCRIPTS).map((s) => join(SCRIPTS, s)), ...readdirSync(join(SKILL, 'runners')).map((s) => join(SKILL, 'runners', s)), join(SKILL, 'install.sh')]) {
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
    // The second run (an upgrade) keeps the first backup: the file as it was before any merge.
    expect(JSON.parse(readFileSync(`${target}.bak`, 'utf8'))).toEqual(mine);
    const merged = JSON.parse(readFileSync(target, 'utf8'));
    expect(merged.model).toBe('opus');
    expect(merged.permissions.deny).toEqual(['Bash(rm:*)']);
    expect(merged.permissions.defaultMode).toBe('default');
    expect(merged.permissions.allow).toEqual(['Bash(npm test:*)', ...claude.allow]);
    expect(merged.permissions.ask).toEqual(claude.ask);

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
