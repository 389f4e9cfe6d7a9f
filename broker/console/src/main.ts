/**
 * The Parley console: a person takes part in a session through the same HTTP API an agent uses.
 * Partner text only ever reaches the page through textContent; the page's CSP forbids inline
 * script and other origins, so even a bug here cannot run what a partner sends.
 */
import { ApiError, call, callJson, randomKey } from './api.js';
import { readEvent, visibleText, type Incoming, type Signal, type WireEvent } from './wire.js';

/** Seconds per long-poll slice: short enough that a silent proxy cut is noticed soon. */
const WAIT_S = 30;
const PING_MS = 10_000;
const MAX_BACKOFF_S = 30;
const STORE = 'parley.console';

type Pause = 'standby' | 'loop' | null;

interface Session {
  token: string;
  /** What the person did: started (invite), set up a listener, joined with a code, or opened a watch link. */
  how: 'started' | 'listener' | 'joined' | 'watching';
  /** Watching: the agent whose room this is (whose human the link was for). */
  agent?: string;
  code?: string;
  /** The last event id received; the next wait acknowledges it. */
  ack: string;
  partner?: string;
}

interface Side {
  agent_id: string;
  presence: 'waiting' | 'recent' | 'asleep' | 'gone';
  last_seen_ms: number;
}

interface WatchStatus {
  agent: Side;
  partner: Side | null;
  paused: Pause;
}

interface Ping {
  room_alive: boolean;
  partner_connected: boolean;
  partner_presence: 'waiting' | 'recent' | 'asleep' | 'gone' | null;
  paused: Pause;
}

const el = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  link: el('link'),
  start: el('start'),
  startError: el('start-error'),
  room: el('room'),
  presence: el('presence'),
  codeBox: el('code-box'),
  codeHint: el('code-hint'),
  code: el('code'),
  copy: el<HTMLButtonElement>('copy-btn'),
  pause: el('pause'),
  pauseH: el('pause-h'),
  pauseText: el('pause-text'),
  pauseActions: el('pause-actions'),
  transcript: el('transcript'),
  composer: el<HTMLFormElement>('composer'),
  message: el<HTMLTextAreaElement>('message'),
  sendError: el('send-error'),
  ended: el('ended'),
  endedText: el('ended-text'),
  watchBar: el('watch-bar'),
  watchAgent: el('watch-agent'),
};

/** A watcher reads the room through its own routes; a participant through the agent API. */
const ROUTES = {
  takePart: { wait: '/wait', status: '/ping', resume: '/resume', leave: '/leave' },
  watch: { wait: '/watch/wait', status: '/watch/status', resume: '/watch/resume', leave: '/watch/end' },
};
const routes = (s: Session) => (s.how === 'watching' ? ROUTES.watch : ROUTES.takePart);

let session: Session | null = null;
/** Bumped whenever a session starts or ends, so an old loop notices it is stale. */
let generation = 0;
let pause: Pause = null;
let loopReason = '';
let waitAbort: AbortController | null = null;
const seen = new Set<string>();

// ── the session in this tab (sessionStorage: gone when the tab closes, never sent anywhere) ──

function save(): void {
  if (session) sessionStorage.setItem(STORE, JSON.stringify(session));
}

function restore(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORE) ?? 'null') as Session | null;
    return s && typeof s.token === 'string' ? s : null;
  } catch {
    return null;
  }
}

// ── screens ──

function show(screen: 'start' | 'room'): void {
  ui.start.hidden = screen !== 'start';
  ui.room.hidden = screen !== 'room';
}

function showStart(error = '', code = ''): void {
  show('start');
  setError(ui.startError, error, code);
  setLink('');
}

/** An error line, with the broker's refusal code in data-code for tools and tests. */
function setError(where: HTMLElement, text: string, code = ''): void {
  where.textContent = text;
  if (code) where.dataset.code = code;
  else delete where.dataset.code;
}

function setLink(text: string): void {
  ui.link.textContent = text;
}

/** One transcript entry; `kind` (data-kind) is the event kind, `sent` for own messages, `local` for the page's own notes. */
function addItem(cls: string, kind: string, label: string, text: string): void {
  const li = document.createElement('li');
  li.className = cls;
  li.dataset.kind = kind;
  const meta = document.createElement('p');
  meta.className = 'meta';
  meta.textContent = label;
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = visibleText(text);
  li.append(meta, body);
  ui.transcript.append(li);
  toLatest();
}

/** The transcript scrolls on its own: keep its newest entry in view. */
function toLatest(): void {
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function addNotice(text: string, kind = 'local'): void {
  addItem('notice', kind, 'Parley', text);
}

function setPause(p: Pause): void {
  pause = p;
  ui.pause.hidden = p === null;
  requestAnimationFrame(toLatest); // the banner took or gave back room
  ui.pause.classList.toggle('loop', p === 'loop');
  ui.pauseActions.hidden = p !== 'loop';
  if (p === 'standby') {
    ui.pauseH.textContent = 'Paused: both sides are on standby';
    ui.pauseText.textContent =
      session?.how === 'watching'
        ? 'Nobody owes a reply. A new message from either side wakes the room.'
        : 'Nobody owes a reply. Send a message to wake the room, or leave if the work is done.';
  } else if (p === 'loop') {
    ui.pauseH.textContent = 'Paused: this looks like a loop';
    ui.pauseText.textContent =
      `The broker stopped the conversation because it was going round in circles${loopReason ? ` (${loopReason})` : ''}. ` +
      'Messages are refused until someone resumes. Resume only if there is real work left: a second loop ends the session.';
  }
}

function showPresence(p: Ping): void {
  const who = session?.partner ?? 'Your partner';
  let text: string;
  if (!p.partner_connected)
    text =
      session?.partner || session?.how === 'joined'
        ? 'Your partner left. Nobody else can join this room: leave it to start a new session.'
        : 'Waiting for your partner to join with your code.';
  else if (p.partner_presence === 'waiting') text = `${who} is connected and listening.`;
  else if (p.partner_presence === 'recent') text = `${who} was here moments ago.`;
  else text = `${who} has not checked in for a while; your messages wait for them.`;
  ui.presence.textContent = text;
  if (p.partner_connected) ui.codeBox.hidden = true;
  if (p.paused !== pause) setPause(p.paused);
}

/** A watcher's view of both sides: connected, holding a wait, last seen. */
function showWatchPresence(st: WatchStatus): void {
  const line = (x: Side, who: string) => {
    const span = document.createElement('span');
    const s = Math.round(x.last_seen_ms / 1000);
    const ago = s < 90 ? `${s} s` : `${Math.round(s / 60)} min`;
    span.textContent =
      x.presence === 'waiting'
        ? `${who} is connected and holding a wait.`
        : x.presence === 'recent'
          ? `${who} is connected; last seen ${ago} ago.`
          : `${who} has not checked in for ${ago}.`;
    return span;
  };
  const partner = st.partner ? line(st.partner, `Partner ${st.partner.agent_id}`) : document.createElement('span');
  if (!st.partner) partner.textContent = 'No partner in the room yet.';
  ui.presence.replaceChildren(line(st.agent, `${st.agent.agent_id} (your agent)`), partner);
  if (st.paused !== pause) setPause(st.paused);
}

// ── entering and leaving a room ──

function enterRoom(s: Session, note?: string): void {
  session = s;
  save();
  const gen = ++generation;
  seen.clear();
  ui.transcript.replaceChildren();
  ui.ended.hidden = true;
  const watching = s.how === 'watching';
  ui.composer.hidden = watching;
  ui.watchBar.hidden = !watching;
  ui.watchAgent.textContent = s.agent ?? '';
  setError(ui.sendError, '');
  ui.presence.textContent = '';
  setPause(null);
  loopReason = '';
  ui.codeBox.hidden = !s.code;
  if (s.code) {
    ui.code.textContent = s.code;
    ui.codeHint.textContent =
      s.how === 'listener'
        ? 'Give this listener code to the agent that should come to you. Whoever redeems it hosts the session with you. It works once.'
        : `Give this invite code to your partner. A person joins on this page; an agent joins with POST ${location.origin}/register-and-join/<code>. It works once.`;
  }
  show('room');
  if (note) addNotice(note);
  void waitLoop(gen);
  void pingLoop(gen);
  (s.code ? ui.copy : watching ? ui.transcript : ui.message).focus();
}

function endSession(text: string): void {
  generation++;
  waitAbort?.abort();
  session = null;
  sessionStorage.removeItem(STORE);
  setPause(null);
  ui.codeBox.hidden = true;
  ui.composer.hidden = true;
  ui.watchBar.hidden = true;
  ui.presence.textContent = '';
  ui.endedText.textContent = text;
  ui.ended.hidden = false;
  setLink('');
  el('again-btn').focus();
}

async function begin(how: 'started' | 'listener'): Promise<void> {
  try {
    const r = await callJson<{ token: string; code: string }>('POST', '/setup', { json: { type: how === 'listener' ? 'listener' : 'standard', headless: false } });
    enterRoom({ token: r.token, how, code: r.code, ack: '' });
  } catch (e) {
    showStart(problem(e), e instanceof ApiError ? e.code : 'network');
  }
}

async function join(code: string): Promise<void> {
  if (!/^(invite|listen)_[0-9a-f]{32}$/.test(code)) return showStart('That is not a Parley code: it looks like invite_ or listen_ followed by 32 letters and digits.', 'invalid_code');
  try {
    const r = await callJson<{ token: string }>('POST', `/register-and-join/${code}`);
    enterRoom({ token: r.token, how: 'joined', ack: '' }, 'You joined. The session is live.');
  } catch (e) {
    const code = e instanceof ApiError ? e.code : 'network';
    showStart(code === 'invalid_code' ? 'That code is unknown, already used or expired. Ask your partner for a new one.' : problem(e), code);
  }
}

/** Burns a watch link's code (from the page's fragment) for a watcher token kept in this tab. */
async function watch(code: string): Promise<void> {
  try {
    const r = await callJson<{ token: string; agent: string }>('POST', '/watch/redeem', { json: { code } });
    enterRoom({ token: r.token, how: 'watching', agent: r.agent, ack: '' }, `You are watching ${r.agent}'s session live. The link is used up; this tab keeps watching until you close it.`);
  } catch (e) {
    const code = e instanceof ApiError ? e.code : 'network';
    showStart(code === 'invalid_code' ? 'This watch link was already used or has expired. Ask your agent for a new one.' : problem(e), code);
  }
}

/** A refusal or a network failure in plain words. */
function problem(e: unknown): string {
  if (e instanceof ApiError) return e.code === 'draining' ? 'The broker is restarting. Try again in a few seconds.' : e.message;
  return 'The broker did not answer. Check your connection and try again.';
}

// ── the event stream ──

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      window.removeEventListener('online', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    window.addEventListener('online', done);
  });

async function waitLoop(gen: number): Promise<void> {
  let backoffS = 0;
  let dropped = false;
  while (gen === generation && session) {
    const s = session;
    waitAbort = new AbortController();
    try {
      const res = await call('GET', `${routes(s).wait}?timeout=${WAIT_S}&ack=${encodeURIComponent(s.ack)}`, { token: s.token, signal: waitAbort.signal, headers: { accept: 'application/json' } });
      const wire = (await res.json()) as WireEvent;
      if (gen !== generation) return;
      if (dropped) {
        setLink('Connected again.');
        dropped = false;
      }
      backoffS = 0;
      const ev = readEvent(wire, s.how === 'watching' ? s.agent : undefined);
      if (ev.kind === 'timeout') continue;
      s.ack = ev.id;
      save();
      if (seen.has(ev.id)) continue;
      seen.add(ev.id);
      if (handle(ev)) return;
      if (wire.kind === 'broker_restarting') {
        dropped = true;
        setLink('The broker is restarting. Reconnecting…');
        await sleep(2000);
      }
    } catch (e) {
      if (gen !== generation) return;
      if (e instanceof ApiError) {
        if (e.status === 401) return endSession('The broker no longer knows this session: it restarted, or the session expired. Start again when you are ready.');
        if (e.code === 'not_in_room') return endSession('This session has ended.');
        if (e.code === 'wait_pending') {
          // Another tab, or a wait the broker has not yet seen close: try again shortly.
          await sleep(2000);
          continue;
        }
      }
      dropped = true;
      backoffS = Math.min(MAX_BACKOFF_S, e instanceof ApiError && e.retryAfterS ? e.retryAfterS : backoffS ? backoffS * 2 : 1);
      setLink(
        e instanceof ApiError && e.code === 'draining'
          ? `The broker is restarting. Trying again in ${backoffS} s.`
          : `Lost the connection to the broker. Trying again in ${backoffS} s.`,
      );
      await sleep(backoffS * 1000);
      if (gen === generation) setLink('Reconnecting…');
    }
  }
}

/** Shows one event; true when it ended the session. */
function handle(ev: Exclude<Incoming, { kind: 'timeout' }>): boolean {
  if (ev.kind === 'message') {
    // A watcher sees both sides: the watched agent's messages where a participant sees its own.
    const mine = session?.how === 'watching' && ev.from === session.agent;
    if (session && !session.partner && !mine) session.partner = ev.from;
    addItem(`${mine ? 'me' : 'them'} ${ev.signal.toLowerCase()}`, 'message', `${ev.from}${mine ? ' (your agent)' : ''} · ${ev.signal === 'OVER' ? 'over' : 'standby'}`, ev.text);
    if (pause === 'standby') setPause(null);
    return false;
  }
  if (ev.partner && session) {
    session.partner = ev.partner;
    save();
    ui.codeBox.hidden = true;
  }
  if (ev.pause === 'loop') loopReason = ev.reason ?? '';
  addNotice(ev.text, ev.event);
  if (ev.pause !== undefined) setPause(ev.pause);
  if (ev.final) {
    endSession(ev.text);
    return true;
  }
  void refreshPresence();
  return false;
}

async function refreshPresence(): Promise<void> {
  const s = session;
  if (!s) return;
  try {
    if (s.how === 'watching') {
      const st = await callJson<WatchStatus>('GET', routes(s).status, { token: s.token });
      if (s === session) showWatchPresence(st);
      return;
    }
    const p = await callJson<Ping>('GET', '/ping', { token: s.token });
    if (s === session) showPresence(p);
  } catch {
    // The wait loop reports connection trouble; a missed presence update is harmless.
  }
}

async function pingLoop(gen: number): Promise<void> {
  while (gen === generation) {
    await refreshPresence();
    await sleep(PING_MS);
  }
}

// ── sending ──

async function send(signal: Signal): Promise<void> {
  const s = session;
  const text = ui.message.value;
  setError(ui.sendError, '');
  if (!s) return;
  if (text.trim() === '') {
    setError(ui.sendError, 'Write a message first.', 'empty_message');
    return ui.message.focus();
  }
  const buttons = ui.composer.querySelectorAll('button');
  buttons.forEach((b) => (b.disabled = true));
  // One key for every retry of this message: the broker delivers it once however often it is posted.
  const key = randomKey();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await call('POST', '/send', { token: s.token, body: `${text} [${signal}]`, headers: { 'idempotency-key': key } });
        break;
      } catch (e) {
        if (e instanceof ApiError || attempt === 3) throw e;
        await sleep(attempt * 1000);
      }
    }
    addItem(`me ${signal.toLowerCase()}`, 'sent', `You · ${signal === 'OVER' ? 'over' : 'standby'}`, text);
    ui.message.value = '';
    if (pause === 'standby') setPause(null);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'loop_paused') setPause('loop');
    const code = e instanceof ApiError ? e.code : 'network';
    setError(
      ui.sendError,
      code === 'partner_not_connected'
        ? 'Not sent: your partner is not in the room. Your text is still here.'
        : code === 'loop_paused'
          ? 'Not sent: the room is paused (see above). Your text is still here.'
          : `Not sent: ${problem(e)} Your text is still here.`,
      code,
    );
  } finally {
    buttons.forEach((b) => (b.disabled = false));
    ui.message.focus();
  }
}

async function resume(): Promise<void> {
  const s = session;
  if (!s) return;
  try {
    await call('POST', routes(s).resume, { token: s.token });
    setPause(null);
    ui.message.focus();
  } catch (e) {
    if (e instanceof ApiError && e.code === 'not_paused') return setPause(null);
    ui.pauseText.textContent = `Could not resume: ${problem(e)}`;
  }
}

async function leave(): Promise<void> {
  const s = session;
  if (!s) return;
  try {
    await call('POST', routes(s).leave, { token: s.token });
  } catch {
    // Leaving is best effort: the token expires on its own, and this tab forgets it now.
  }
  endSession(
    s.how === 'watching'
      ? `You ended the session for ${s.agent}: it left the room, and its partner was told.`
      : s.how === 'joined'
        ? 'You left the session.'
        : 'You ended the session. Your partner was told.',
  );
}

// ── wiring ──

el('start-btn').addEventListener('click', () => void begin('started'));
el('listen-btn').addEventListener('click', () => void begin('listener'));
el<HTMLFormElement>('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void join(el<HTMLInputElement>('join-code').value.trim());
});
ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const submitter = (e as SubmitEvent).submitter as HTMLButtonElement | null;
  void send(submitter?.value === 'STANDBY' ? 'STANDBY' : 'OVER');
});
ui.message.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    void send('OVER');
  }
});
ui.copy.addEventListener('click', async () => {
  const code = ui.code.textContent ?? '';
  try {
    await navigator.clipboard.writeText(code);
    ui.copy.textContent = 'Copied';
  } catch {
    // No clipboard (plain-HTTP page, or permission refused): select it for a manual copy.
    getSelection()?.selectAllChildren(ui.code);
    ui.copy.textContent = 'Selected: press Ctrl+C';
  }
  setTimeout(() => (ui.copy.textContent = 'Copy code'), 3000);
});
// A held wait can hang on a dead connection for its whole slice: going offline ends it at once.
window.addEventListener('offline', () => waitAbort?.abort());
el('resume-btn').addEventListener('click', () => void resume());
el('end-btn-pause').addEventListener('click', () => void leave());
el('leave-btn').addEventListener('click', () => void leave());
el('stop-watch-btn').addEventListener('click', () => endSession('You stopped watching. The session goes on; ask your agent for a new link to watch again.'));
el('again-btn').addEventListener('click', () => {
  ui.ended.hidden = true;
  showStart();
  el('start-btn').focus();
});

// A watch link: the code is in the fragment, which the browser never sends; it is taken out of
// the address bar and history at once, then burned for a watcher token.
const link = /^#watch=([A-Za-z0-9_]{1,100})$/.exec(location.hash);
if (location.hash) history.replaceState(null, '', location.pathname + location.search);
const resumed = restore();
if (link) void watch(link[1]);
else if (resumed) enterRoom(resumed, resumed.how === 'watching' ? 'Watching again. Messages from before the reload are not kept in this tab.' : 'Reconnected to your session. Messages from before the reload are not kept in this tab.');
else showStart();
