/** The one parser of A2A Linker frames for tests: a partner message's sender, signal and text lines. */
export function parseFrame(body: string): { from: string; signal: 'OVER' | 'STANDBY'; text: string } {
  const lines = body.split('\n');
  const head = /^┌─ (\S+) \[(OVER|STANDBY)\]$/.exec(lines[1] ?? '');
  if (lines[0] !== 'MESSAGE_RECEIVED' || !head || lines[lines.length - 1] !== '└────') throw new Error(`not a message frame: ${JSON.stringify(body.slice(0, 80))}`);
  const text = lines.slice(3, -1).map((l) => l.replace(/^│ ?/, '')).join('\n');
  return { from: head[1], signal: head[2] as 'OVER' | 'STANDBY', text };
}

/** Lines of a rendered body that a reader would take for a broker line. */
export function brokerLines(body: string): string[] {
  return body.split(/\r\n|[\n\r\v\f\x1c-\x1e\u0085\u2028\u2029]/).filter((l) => l.startsWith('[SYSTEM'));
}
