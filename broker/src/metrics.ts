/**
 * Prometheus counters for GET /metrics. Counts and sizes only: no label ever carries a
 * token, a code, an address or a word of any message.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(rooms: () => number) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'parley_' });
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new Counter({ name: `parley_${name}`, help, labelNames, registers: [registry] });
  const responses = counter('http_responses_total', 'HTTP responses by route and status', ['route', 'status']);
  // The labelled child per route and status, looked up once: prom-client checks labels on every inc().
  const children = new Map<string, ReturnType<typeof responses.labels>>();
  const response = (route: string, status: number) => {
    const key = `${route} ${status}`;
    let child = children.get(key);
    if (!child) children.set(key, (child = responses.labels(route, String(status))));
    child.inc();
  };
  return {
    registry,
    tokensIssued: counter('tokens_issued_total', 'Tokens registered'),
    roomsOpened: counter('rooms_opened_total', 'Rooms created'),
    roomsClosed: counter('rooms_closed_total', 'Rooms closed'),
    joins: counter('joins_total', 'Codes redeemed'),
    messages: counter('messages_total', 'Messages accepted by /send'),
    messageBytes: counter('message_bytes_total', 'Bytes of messages accepted'),
    delivered: counter('messages_delivered_total', 'Messages fully written to a waiting partner'),
    redelivered: counter('messages_requeued_total', 'Events put back because the connection closed mid-write'),
    expired: counter('messages_expired_total', 'Messages dropped unread after MESSAGE_TTL_S (sender notified)'),
    standbyPauses: counter('standby_pauses_total', 'Rooms paused because both sides sent [STANDBY]'),
    loopAlarms: counter('loop_alarms_total', 'Loop alarms raised'),
    severed: counter('sessions_severed_total', 'Sessions severed by a second loop alarm'),
    rateLimited: counter('rate_limited_total', 'Requests refused by a rate limit', ['limit']),
    responses,
    /** Counts one response (route patterns only, never a path that could hold a code). */
    response,
    waiters: new Gauge({ name: 'parley_waiters', help: 'Long-polls currently held', registers: [registry] }),
    mcpSessions: new Gauge({ name: 'parley_mcp_sessions', help: 'MCP sessions open now', registers: [registry] }),
    rooms: new Gauge({ name: 'parley_rooms', help: 'Rooms open now', registers: [registry], collect() { this.set(rooms()); } }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
