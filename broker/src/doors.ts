/**
 * Front doors. Each door is one folder (http/, and mcp/, a2a/, console/ as they come) that claims
 * some paths and talks to rooms only through the RoomService. Everything every door needs (the
 * client's address, rate limits, metrics, log, config) comes in one shared context, so a limit or
 * an address rule is written once.
 */
import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { addressBucket, clientAddressResolver } from './client-address.js';
import type { SessionStore } from './backend/ports.js';
import type { Config } from './config.js';
import type { RoomService } from './engine/service.js';
import { rateLimits, type RateLimits } from './limits.js';
import type { Metrics } from './metrics.js';

export interface DoorContext {
  rooms: RoomService;
  limits: RateLimits;
  /** The client's address (X-Forwarded-For only from a trusted proxy). */
  clientAddress(req: IncomingMessage): string;
  /** The rate-limit bucket of that address (/24 or /64). */
  bucket(req: IncomingMessage): string;
  metrics: Metrics;
  log: Logger;
  config: Config;
  /** Per-session secrets a door keeps (an MCP session's identity), in the state backend so any broker serves the session. */
  sessions: SessionStore;
}

export interface Door {
  name: string;
  /** Whether this door serves `path` (the URL path, without the query). */
  claims(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse): void | Promise<void>;
  /** SIGTERM: answer what is held, refuse new work. */
  drain?(): void | Promise<void>;
  close?(): void | Promise<void>;
}

export function doorContext(rooms: RoomService, config: Config, metrics: Metrics, log: Logger, sessions: SessionStore, rateLimitStore?: unknown): DoorContext {
  const clientAddress = clientAddressResolver(config.trustedProxies);
  return {
    rooms,
    limits: rateLimits(config, metrics, rateLimitStore),
    clientAddress,
    bucket: (req) => addressBucket(clientAddress(req)),
    metrics,
    log,
    config,
    sessions,
  };
}

/** A body still on its way (a request without one may be answered before node:http marks it complete). */
const unreadBody = (req: IncomingMessage) => !req.complete && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0);

/**
 * The server's response class, for two rules that hold for every door's answers, applied as their
 * head is written (node:http's implicit head, from res.end() alone, comes here too): while the
 * broker drains, each closes its connection, so the process can exit promptly, even for a wait
 * answered after the drain began; and a body left unread (a refusal before it was needed) is not
 * drained to keep the connection alive, so a refused upload is not received: the connection is closed.
 */
export function closingResponses(draining: () => boolean): typeof ServerResponse {
  const writeHead = ServerResponse.prototype.writeHead as (...args: unknown[]) => ServerResponse;
  class ClosingResponse extends ServerResponse {}
  // Assigned rather than declared: writeHead's overloads cannot be restated in a subclass.
  ClosingResponse.prototype.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (draining() || unreadBody(this.req)) this.setHeader('connection', 'close');
    return writeHead.apply(this, args);
  } as ServerResponse['writeHead'];
  return ClosingResponse as typeof ServerResponse;
}

/** One request handler for node:http: the first door that claims the path serves it (the last door is the fallback). */
export function dispatch(doors: Door[]): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const door = doors.find((d) => d.claims(path)) ?? doors[doors.length - 1];
    void door.handle(req, res);
  };
}
