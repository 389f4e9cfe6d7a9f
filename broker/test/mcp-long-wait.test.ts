/**
 * One MCP wait held past the 60 s at which MCP clients give up on a call: progress notifications
 * every few seconds keep a client that resets its timeout on progress waiting. About 65 s, so it
 * has a file of its own and runs beside the others.
 */
import { describe, expect, it } from 'vitest';
import { broker } from './helpers.js';
import { mcpHostAndCurlJoiner } from './mcp-helpers.js';

describe('MCP long wait', () => {
  it('a wait held past 60 s with progress notifications gets the message sent after the 13th', { timeout: 120_000 }, async () => {
    const b = await broker({ MCP_PROGRESS_S: '5' });
    const { api, mcp, joiner } = await mcpHostAndCurlJoiner(b.url);

    const progress: number[] = [];
    const r = await mcp.call(
      'parley_wait',
      { timeout_s: 100 },
      {
        // The SDK's default 60 s request timeout stands; only progress keeps the call alive.
        timeout: 60_000,
        resetTimeoutOnProgress: true,
        onprogress: (p) => {
          progress.push(p.progress);
          // 13 notifications 5 s apart: the wait has been held for 65 s.
          if (progress.length === 13) void api.send(joiner, 'worth the wait [OVER]');
        },
      },
    );
    expect(r.structuredContent).toMatchObject({ outcome: 'event', event: { kind: 'message', untrusted_text: 'worth the wait' } });
    expect(progress.length).toBeGreaterThanOrEqual(13);
    expect(progress.slice(0, 13)).toEqual(Array.from({ length: 13 }, (_, i) => (i + 1) * 5));
  });
});
