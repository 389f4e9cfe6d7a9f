/** Watch links over HTTP: a participant's human follows the room read-only, and gives the word after a loop pause. */
import { describe, expect, it } from 'vitest';
import { broker, client } from './helpers.js';
import { mcpHostAndCurlJoiner, nextEvent } from './mcp-helpers.js';
import { register, ssh, sshBroker } from './ssh-client.js';
import { THANKS } from './polite.js';

type Api = ReturnType<typeof client>;

/** Asks for a watch link with the agent's token; returns the code from the link's fragment. */
async function watchCode(api: Api, agent: string): Promise<{ url: string; code: string }> {
  const r = await api.call('POST', '/watch', { token: agent });
  expect(r.status).toBe(200);
  const m = /#watch=(watch_[0-9a-f]{32})$/.exec(r.json.url);
  if (!m) throw new Error(`no code in ${r.json.url}`);
  return { url: r.json.url, code: m[1] };
}

const redeem = (api: Api, code: string) => api.call('POST', '/watch/redeem', { body: JSON.stringify({ code }), type: 'application/json' });
const watchWait = (api: Api, watcher: string, ack = '') =>
  api.call('GET', `/watch/wait?timeout=1&ack=${ack}`, { token: watcher, headers: { accept: 'application/json' } });

/** Every event the watcher has queued, acknowledging as it goes. */
async function feed(api: Api, watcher: string): Promise<any[]> {
  const seen: any[] = [];
  let ack = '';
  for (;;) {
    const r = await watchWait(api, watcher, ack);
    if (r.status !== 200) throw new Error(`watch wait answered ${r.status} ${r.text}`);
    if (r.json.kind === 'timeout') return seen;
    seen.push(r.json);
    ack = r.json.id;
  }
}

describe('watch link', () => {
  it('a link on PUBLIC_URL with the code in its fragment; the code works once; the partner gets a broker notice', async () => {
    const b = await broker({ PUBLIC_URL: 'https://parley.example' });
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const { url, code } = await watchCode(api, host);
    expect(url).toBe(`https://parley.example/console/#watch=${code}`);
    expect((await api.call('POST', '/watch', { token: host })).json.expires_in_s).toBe(900);

    const first = await redeem(api, code);
    expect(first.status).toBe(200);
    expect(first.json.token).toMatch(/^wat_[0-9a-f]{32}$/);
    const again = await redeem(api, code);
    expect(again.status).toBe(404);
    expect(again.json).toEqual({ error: 'Invalid or expired code', code: 'invalid_code' });

    const notice = await api.wait(joiner, 2);
    expect(notice.headers.get('parley-event')).toBe('watcher_joined');
    expect(notice.text).toBe(
      `MESSAGE_RECEIVED\n[SYSTEM]: A human is now watching this session live through ${first.json.agent}'s watch link. Watching is read-only: only ${first.json.agent} speaks for that side.`,
    );
    // The agent that asked sees no notice of its own.
    expect((await api.wait(host, 1)).headers.get('parley-event')).toBe('timeout');
  });

  it('a partner who joins after the link was opened is told too', async () => {
    const api = client((await broker()).url);
    const s = (await api.setup()).json;
    const w = await redeem(api, (await watchCode(api, s.token)).code);
    expect(w.status).toBe(200);
    const j = (await api.registerAndJoin(s.code)).json;
    const got = await api.wait(j.token, 2);
    expect(got.headers.get('parley-event')).toBe('watcher_joined');
    expect((await feed(api, w.json.token)).map((e) => e.kind)).toEqual(['partner_joined']);
  });

  it('the watcher sees both directions and the pauses; it cannot send, wait or leave as the agent', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    const watcher = (await redeem(api, (await watchCode(api, host)).code)).json.token;
    await api.wait(joiner, 1); // the watch notice
    await api.send(host, 'Schema ready for review. [OVER]');
    await api.send(joiner, 'Looks right to me. [STANDBY]');
    await api.send(host, 'Merged. [STANDBY]');
    const events = await feed(api, watcher);
    expect(events.map((e) => [e.kind, e.text ?? null])).toEqual([
      ['message', 'Schema ready for review.'],
      ['message', 'Looks right to me.'],
      ['message', 'Merged.'],
      ['standby_pause', null],
    ]);

    const before = (await api.ping(host)).json;
    for (const [method, path] of [['POST', '/send'], ['POST', '/resume'], ['POST', '/leave'], ['GET', '/ping'], ['GET', '/wait?timeout=1']] as const) {
      const r = await api.call(method, path, { token: watcher, body: method === 'POST' ? 'Sent by the watcher? [OVER]' : undefined });
      expect([path, r.status, r.json]).toEqual([path, 403, { error: 'A watch link only watches: it cannot send, wait or act as the agent', code: 'watch_only' }]);
    }
    // Nothing reached the partner, and the room is as it was.
    expect((await api.wait(joiner, 1)).text).toMatch(/^MESSAGE_RECEIVED\n┌─ Agent-[0-9a-f]{4} \[OVER\]\n│\n│ Schema ready/);
    expect((await api.wait(joiner, 1)).text).toMatch(/Merged\./);
    expect((await api.wait(joiner, 1)).headers.get('parley-event')).toBe('standby_pause');
    expect((await api.wait(joiner, 1)).headers.get('parley-event')).toBe('timeout');
    expect((await api.ping(host)).json.room_alive).toBe(before.room_alive);
  });

  it('presence of both sides, and after a loop alarm the watcher resumes, then ends the session', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    const watcher = (await redeem(api, (await watchCode(api, joiner)).code)).json.token;
    const held = api.wait(host, 5);
    const status = await api.call('GET', '/watch/status', { token: watcher });
    expect(status.status).toBe(200);
    expect(status.json.agent).toMatchObject({ role: 'joiner', presence: 'recent' });
    expect(status.json.partner).toMatchObject({ role: 'host' });
    expect(status.json.paused).toBe(null);

    // A polite loop until the broker pauses the room.
    let refused = 0;
    for (let i = 0; i < 24 && !refused; i++) {
      const r = await api.send(i % 2 ? joiner : host, `${THANKS[i % THANKS.length]} [OVER]`);
      if (r.status === 429) refused = r.status;
    }
    expect(refused).toBe(429);
    await held;
    expect((await api.call('GET', '/watch/status', { token: watcher })).json.paused).toBe('loop');
    const alarm = (await feed(api, watcher)).find((e) => e.kind === 'loop_alarm');
    expect(alarm).toMatchObject({ severed: false });
    expect(alarm.reason).toMatch(/\w/);

    expect((await api.call('POST', '/watch/resume', { token: watcher })).json).toEqual({ ok: true });
    expect((await api.call('GET', '/watch/status', { token: watcher })).json.paused).toBe(null);
    expect((await feed(api, watcher)).map((e) => e.kind)).toEqual(['resumed']);

    // Ending the session: the watched joiner leaves, the host stays alone and is told.
    expect((await api.call('POST', '/watch/end', { token: watcher })).json).toEqual({ ok: true });
    const last = await watchWait(api, watcher);
    expect(last.json).toMatchObject({ kind: 'room_closed', why: 'you_left' });
    expect(last.json.agent).toMatch(/^Agent-[0-9a-f]{4}$/);
    expect((await watchWait(api, watcher, last.json.id)).json.code).toBe('not_in_room');
    expect((await api.ping(joiner)).json.room_alive).toBe(false);
    const told: string[] = [];
    for (let r = await api.wait(host, 1); r.headers.get('parley-event') !== 'timeout'; r = await api.wait(host, 1)) told.push(r.headers.get('parley-event')!);
    expect(told).toContain('partner_left');
  });

  it('an MCP agent gets its link from parley_status {watch_link: true}; its curl partner is told', async () => {
    const b = await broker();
    const { api, mcp, joiner } = await mcpHostAndCurlJoiner(b.url);
    const r = await mcp.call('parley_status', { watch_link: true });
    expect(r.isError).toBeFalsy();
    const url: string = r.structuredContent.watch_url;
    expect(url).toMatch(new RegExp(`^${b.url}/console/#watch=watch_[0-9a-f]{32}$`));
    expect(mcp.text(r)).toContain(`Watch link for your own human (works once, never for the partner): ${url}`);
    expect((await mcp.call('parley_status')).structuredContent.watch_url).toBeUndefined();
    const w = await redeem(api, url.split('#watch=')[1]);
    expect(w.status).toBe(200);
    expect((await api.wait(joiner, 2)).headers.get('parley-event')).toBe('watcher_joined');
    // The MCP agent's own messages reach its watcher.
    await mcp.call('parley_send', { text: 'Report attached.', signal: 'STANDBY' });
    expect((await feed(api, w.json.token)).map((e) => [e.kind, e.text])).toEqual([['message', 'Report attached.']]);
    await api.send(joiner, 'Thanks, closing. [STANDBY]');
    expect((await nextEvent(mcp)).kind).toBe('message');
  });

  it('an SSH agent types /watch alone on a line and gets its link; its curl partner is told', async () => {
    const b = await broker({ PUBLIC_URL: 'https://parley.example' });
    const api = client(b.url);
    const { port } = await sshBroker(b.url);
    const host = await ssh(port, await register(port), 'create');
    const code = /Invite code: (invite_\w+)/.exec(await host.waitFor(/Invite code: .*\n/))![1];
    const joiner = (await api.registerAndJoin(code)).json.token;
    await host.waitFor(/has joined/);
    host.write('/watch\n');
    const line = await host.waitFor(/\[WATCH LINK\] .*\n/);
    const url = /\[WATCH LINK\] (https:\/\/parley\.example\/console\/#watch=watch_[0-9a-f]{32}) \(for your own human only; it works once\)/.exec(line)?.[1];
    expect(url).toBeDefined();
    expect((await redeem(api, url!.split('#watch=')[1])).status).toBe(200);
    expect((await api.wait(joiner, 2)).headers.get('parley-event')).toBe('watcher_joined');
    expect((await api.wait(joiner, 1)).headers.get('parley-event')).toBe('timeout'); // "/watch" was not sent as a message
    host.end();
  });

  it('bad inputs: no token, a malformed or unknown code, a non-participant token: clear 4xx, nothing changes', async () => {
    const api = client((await broker()).url);
    const { host } = await api.pair();
    expect((await api.call('POST', '/watch')).json.code).toBe('unauthorized');
    const alone = (await api.register()).json.token;
    expect((await api.call('POST', '/watch', { token: alone })).json.code).toBe('not_in_room');
    expect((await redeem(api, 'watch_nothing')).json.code).toBe('invalid_code');
    expect((await redeem(api, `watch_${'0'.repeat(32)}`)).json.code).toBe('invalid_code');
    const bad = await api.call('POST', '/watch/redeem', { body: '{"code": 7}', type: 'application/json' });
    expect([bad.status, bad.json.code]).toEqual([400, 'bad_body']);
    expect((await api.call('GET', '/watch/status', { token: host })).json.code).toBe('unauthorized');
    expect((await api.call('GET', '/watch/wait?timeout=1', { token: `wat_${'0'.repeat(32)}` })).json.code).toBe('unauthorized');
    // Links are capped per room.
    for (let i = 0; i < 8; i++) expect((await api.call('POST', '/watch', { token: host })).status).toBe(200);
    const capped = await api.call('POST', '/watch', { token: host });
    expect([capped.status, capped.json.code]).toEqual([403, 'watch_limit']);
  });

  it('the code and the watcher token never reach the log', async () => {
    const logs: string[] = [];
    const api = client((await broker({}, logs)).url);
    const { host } = await api.pair();
    const { code } = await watchCode(api, host);
    const watcher = (await redeem(api, code)).json.token;
    await feed(api, watcher);
    await redeem(api, code);
    const all = logs.join('\n');
    expect(all).toContain('/watch/redeem');
    expect(all).not.toContain(code.slice(6));
    expect(all).not.toContain(watcher.slice(4));
  });
});
