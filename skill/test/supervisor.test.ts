/** The supervisor, with a deterministic fake runner, against a live broker. */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agent, argvs, liveBroker, MANY_STEPS, messageText, SKILL, until } from './agents.js';

const FAKE = join(SKILL, 'test', 'fake-runner.sh');


describe('supervisor', () => {
  it('carries a full exchange between two supervisors and stops on the STANDBY pause', async () => {
    const { url } = await liveBroker();
    const a = agent(url, 'a');
    const b = agent(url, 'b');
    const host = a.supervisor(['host', '--runner', FAKE, '--opening', 'Let us compare our deployment setups']);
    // The invite code is on the host supervisor's stdout, for the human to pass on.
    await until(() => /INVITE_CODE: invite_/.test(host.stdout()));
    const code = /INVITE_CODE: (\S+)/.exec(host.stdout())![1];
    const joiner = b.supervisor(['join', code, '--runner', FAKE]);

    const [h, j] = await Promise.all([host.result, joiner.result]);
    for (const r of [h, j]) {
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^STOPPED reason=standby_pause turns=\d+$/m);
      expect(r.out + r.err).not.toMatch(/tok_/);
    }
    // The joiner's runner saw the opening and every host fact, in order, in its context file.
    const context = readFileSync(join(b.stateDir(), 'context.md'), 'utf8');
    expect(statSync(join(b.stateDir(), 'context.md')).mode & 0o777).toBe(0o600);
    expect(context).toContain('you are the joiner');
    expect(context).toContain('WALKIE-TALKIE RULES');
    const partnerTurns = [...context.matchAll(/^### Partner \(Agent-[0-9a-f]{4}\) \[(\w+)\]\n(.*)$/gm)].map((m) => [m[1], m[2]]);
    expect(partnerTurns[0]).toEqual(['OVER', 'Let us compare our deployment setups']);
    expect(partnerTurns.at(-1)).toEqual(['STANDBY', 'That covers everything on my side']);
    // The runner's first answer had no marker: the supervisor passed the turn with [OVER].
    expect(context).toMatch(/^### You \[OVER\]\nGot "Let us compare our deployment setups"\. The staging database runs Postgres 15\.4 on port 5433$/m);
    // The human's live log names each turn and the reason it stopped.
    expect(h.err).toMatch(/partner is here/);
    expect(h.err).toMatch(/← Agent-[0-9a-f]{4} \[OVER\] Got "Let us compare/);
    expect(h.err).toMatch(/stopped: standby_pause/);
  }, MANY_STEPS);

  it('answers a scripted partner and stops on the loop alarm', async () => {
    const { url } = await liveBroker();
    const human = agent(url, 'human');
    const bot = agent(url, 'bot', { FAKE_RUNNER_MODE: 'thanks' });
    const code = /INVITE_CODE: (\S+)/.exec((await human.run('host.sh')).out)![1];
    const sup = bot.supervisor(['join', code, '--runner', FAKE]);
    expect((await human.run('wait.sh', ['--slice', '5'])).first).toBe('PARTNER_JOINED');
    const thanks = ['Thank you, that was really helpful!', 'Much appreciated, thanks again!', 'Thanks a lot, really great!', 'Cheers, thank you so much!'];
    let alarm = '';
    for (let i = 0; i < 12 && !alarm; i++) {
      const r = await human.say('send.sh', `${thanks[i % thanks.length]} [OVER]`);
      if (r.code !== 0) {
        alarm = r.first;
        break;
      }
      const back = await human.run('loop.sh', ['--slice', '5', '--budget', '20']);
      if (back.code !== 0) alarm = back.first;
      else expect(messageText(back.out)).toBe('Thanks so much, really appreciated!');
    }
    expect(alarm).toMatch(/^LOOP_(PAUSED|ALARM)$/);
    const r = await sup.result;
    expect(r.code).toBe(7);
    expect(r.out).toMatch(/^STOPPED reason=loop_alarm turns=\d+$/m);
  }, MANY_STEPS);

  it('as a listener, answers whoever attaches, then stops when they stand by', async () => {
    const { url } = await liveBroker();
    const bot = agent(url, 'listener-bot', { FAKE_RUNNER_MODE: 'quiet' });
    const caller = agent(url, 'caller');
    const sup = bot.supervisor(['listen', '--runner', FAKE]);
    await until(() => /LISTENER_CODE: listen_/.test(sup.stdout()));
    const code = /LISTENER_CODE: (\S+)/.exec(sup.stdout())![1];
    expect((await caller.run('host.sh', [code])).first).toBe('ROLE: host');
    await caller.say('send.sh', 'Which database does staging use? [OVER]');
    const answer = await caller.run('loop.sh', ['--slice', '5', '--budget', '20']);
    expect(messageText(answer.out)).toBe('Got "Which database does staging use?". The staging database runs Postgres 15.4 on port 5433');
    await caller.say('send.sh', 'Thanks, that is all I needed [STANDBY]');
    // The bot's runner has nothing to add: the supervisor says so with a short STANDBY and stops.
    const r = await sup.result;
    expect(r.out).toMatch(/^STOPPED reason=partner_standby turns=1$/m);
    expect(r.code).toBe(0);
    // The human is told the room is still there and how to close it.
    expect(r.out).toMatch(/^NEXT: the room stays open: .* bash \S+\/scripts\/leave\.sh --session default closes it$/m);
    const closing = await caller.run('wait.sh', ['--slice', '5']);
    expect([closing.first.replace(/Agent-[0-9a-f]+/, 'Agent-x'), messageText(closing.out)]).toEqual(['MESSAGE from=Agent-x signal=STANDBY', 'Nothing to add from my side.']);
    expect((await caller.run('wait.sh', ['--slice', '5'])).first).toBe('STANDBY_PAUSE');
  });

  it('two supervisors both finish when one stands by and the other has nothing to add', async () => {
    const { url } = await liveBroker();
    const a = agent(url, 'a');
    const b = agent(url, 'b', { FAKE_RUNNER_MODE: 'quiet' });
    const host = a.supervisor(['host', '--runner', FAKE, '--opening', 'Let us compare our deployment setups']);
    await until(() => /INVITE_CODE: invite_/.test(host.stdout()));
    const joiner = b.supervisor(['join', /INVITE_CODE: (\S+)/.exec(host.stdout())![1], '--runner', FAKE]);
    // The host's runner ends on [STANDBY]; the quiet joiner's has nothing to add to it.
    const [h, j] = await Promise.all([host.result, joiner.result]);
    expect([j.code, /STOPPED reason=(\w+)/.exec(j.out)?.[1]]).toEqual([0, 'partner_standby']);
    expect([h.code, /STOPPED reason=(\w+)/.exec(h.out)?.[1]]).toEqual([0, 'standby_pause']);
    // The host heard the joiner's short STANDBY and did not answer it with another one.
    const log = h.err.split('\n').map((l) => l.replace(/^\[[\d:]+\] /, '').replace(/Agent-[0-9a-f]+/, 'Agent-x'));
    expect(log.slice(-4, -1)).toEqual(['→ That covers everything on my side [STANDBY]', '← Agent-x [STANDBY] Nothing to add from my side.', 'stopped: standby_pause (both sides stood by)']);
  }, MANY_STEPS);

  it('Ctrl-C or SIGTERM leaves the room, so the partner is told and the next run is not refused', async () => {
    const { url } = await liveBroker();
    const host = agent(url, 'host');
    const bot = agent(url, 'bot');
    const code = /INVITE_CODE: (\S+)/.exec((await host.run('host.sh')).out)![1];
    const sup = bot.supervisor(['join', code, '--runner', FAKE]);
    expect((await host.run('wait.sh', ['--slice', '5'])).first).toBe('PARTNER_JOINED');
    // The supervisor holds a wait (its partner polls at 0 ms) when the human presses Ctrl-C.
    await until(() => sup.stderr().includes('connected as joiner'));
    await until(async () => (await bot.run('ping.sh')).out.includes('ROOM_ALIVE: true') && /curl .*\/wait\?timeout=/.test(argvs().join('\n')));
    sup.child.kill('SIGINT');
    const r = await sup.result;
    expect(r.code).toBe(130);
    expect(r.out).toMatch(/^STOPPED reason=interrupted turns=0$/m);
    expect(r.err).toMatch(/left the room/);
    expect((await host.run('wait.sh', ['--slice', '5'])).first).toBe('PARTNER_LEFT');
    // No wait of the supervisor's is left running.
    expect(argvs().filter((a) => a.includes(bot.stateDir()))).toEqual([]);

    // A host stopped with SIGTERM while it waits for its partner can start again at once.
    const hostSup = bot.supervisor(['host', '--runner', FAKE, '--opening', 'Which port does staging use?']);
    await until(() => /INVITE_CODE: invite_/.test(hostSup.stdout()));
    hostSup.child.kill('SIGTERM');
    const t = await hostSup.result;
    expect([t.code, /STOPPED reason=\w+/.exec(t.out)?.[0]]).toEqual([143, 'STOPPED reason=interrupted']);
    expect((await bot.run('host.sh')).first).toBe('ROLE: host');
  }, MANY_STEPS);

  it('stops and reports when the partner leaves', async () => {
    const { url } = await liveBroker();
    const host = agent(url, 'host');
    const bot = agent(url, 'bot');
    const code = /INVITE_CODE: (\S+)/.exec((await host.run('host.sh')).out)![1];
    const sup = bot.supervisor(['join', code, '--runner', FAKE]);
    await until(() => sup.stderr().includes('connected as joiner'));
    await host.run('leave.sh');
    const r = await sup.result;
    expect(r.code).toBe(10);
    expect(r.out).toMatch(/^STOPPED reason=room_closed turns=0$/m);
  });

  it('hands the runner the contract: the bare text on stdin, PARLEY_SIGNAL, _PARTNER, _ROLE, _SESSION, and _CONTEXT with the rules, also for a room creator', async () => {
    const { url } = await liveBroker();
    const caller = agent(url, 'caller');
    const bot = agent(url, 'bot');
    const dump = join(bot.home, 'dump');
    // The runner records what it got, then stands by.
    const runner = `mkdir -p ${dump} && cat > ${dump}/stdin && env > ${dump}/env && cp "$PARLEY_CONTEXT" ${dump}/context && echo 'Noted, nothing else [STANDBY]'`;
    const sup = bot.supervisor(['listen', '--session', 'desk', '--runner', runner]);
    await until(() => /LISTENER_CODE: listen_/.test(sup.stdout()));
    expect((await caller.run('host.sh', [/LISTENER_CODE: (\S+)/.exec(sup.stdout())![1]])).first).toBe('ROLE: host');
    const text = 'Line one with $HOME and `ticks`\n│ a line that looks framed\n\n  indented after a blank line';
    await caller.say('send.sh', `${text} [OVER]`);
    const answer = await caller.run('loop.sh', ['--slice', '5', '--budget', '20']);
    expect(messageText(answer.out)).toBe('Noted, nothing else');
    expect(readFileSync(join(dump, 'stdin'), 'utf8')).toBe(text);
    const env = Object.fromEntries(readFileSync(join(dump, 'env'), 'utf8').split('\n').filter((l) => l.startsWith('PARLEY_')).map((l) => l.split(/=(.*)/s).slice(0, 2)));
    expect(env).toMatchObject({ PARLEY_SIGNAL: 'OVER', PARLEY_ROLE: 'joiner', PARLEY_SESSION: 'desk', PARLEY_CONTEXT: join(bot.stateDir('desk'), 'context.md') });
    expect(env.PARLEY_PARTNER).toMatch(/^Agent-[0-9a-f]{4}$/);
    // The context file holds the rules and the transcript, this message included.
    const context = readFileSync(join(dump, 'context'), 'utf8');
    expect(context).toContain('WALKIE-TALKIE RULES');
    expect(context).toContain(`### Partner (${env.PARLEY_PARTNER}) [OVER]\n${text}`);
    sup.child.kill('SIGTERM');
    await sup.result;
  }, MANY_STEPS);

  it('refuses a bad command line with a usage error', async () => {
    const { url } = await liveBroker();
    const a = agent(url, 'a');
    for (const args of [['host'], ['host', '--runner', FAKE], ['attach', 'listen_x', '--runner', FAKE], ['join', '--runner', FAKE], ['dance', '--runner', FAKE], ['host', '--runner', FAKE, '--max-turns', 'lots']]) {
      const r = await a.supervisor(args).result;
      expect([r.code, r.first]).toEqual([1, 'USAGE_ERROR']);
    }
  });
});
