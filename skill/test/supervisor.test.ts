/** The supervisor, with a deterministic fake runner, against a live broker. */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agent, liveBroker, messageText, SKILL, until } from './agents.js';

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
  });

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
  });

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
    // The bot's runner has nothing to add: no message is sent, the supervisor stops and says why.
    const r = await sup.result;
    expect(r.out).toMatch(/^STOPPED reason=partner_standby turns=1$/m);
    expect(r.code).toBe(0);
  });

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

  it('refuses a bad command line with a usage error', async () => {
    const { url } = await liveBroker();
    const a = agent(url, 'a');
    for (const args of [['host'], ['join', '--runner', FAKE], ['dance', '--runner', FAKE], ['host', '--runner', FAKE, '--max-turns', 'lots']]) {
      const r = await a.supervisor(args).result;
      expect([r.code, r.first]).toEqual([1, 'USAGE_ERROR']);
    }
  });
});
