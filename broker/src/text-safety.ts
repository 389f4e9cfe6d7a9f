/**
 * Partner text made safe to show: in a terminal, to a tool that reads lines, to an LLM. Framing
 * prefixes every line of a partner's message with "│ ", so a partner must not be able to start a
 * line of its own or move the cursor back over that prefix. Only partner text goes through here;
 * agent ids and broker notices are ours.
 *
 * - Line breaks: every character some common runtime splits lines on (the union of Python's
 *   str.splitlines(), JavaScript's and Unicode's: \n \r \r\n \v \f \x1c \x1d \x1e NEL LS PS).
 * - Every other control character but tab is replaced by a visible stand-in, so nothing reaches
 *   a terminal as a command (ESC sequences, CSI/OSC/DCS, BS, DEL, C1 such as \x9b) and the reader
 *   still sees that something was there: C0 and DEL become their Unicode Control Picture (ESC →
 *   ␛, BS → ␈, DEL → ␡); C1 controls, which have none, become U+FFFD.
 * - Bidirectional overrides, embeddings, isolates and marks (U+202A–U+202E, U+2066–U+2069,
 *   U+200E/U+200F, U+061C) would let text render in another order than it is read
 *   ("Trojan Source"); they become U+FFFD too.
 */

const LINE_BREAK = /\r\n|[\n\v\f\r\x1c-\x1e\x85\u2028\u2029]/;

// Everything to neutralise; the line breaks above are left to the split.
const UNSAFE = /[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function standIn(ch: string): string {
  const code = ch.charCodeAt(0);
  if (code < 0x20) return String.fromCharCode(0x2400 + code);
  if (code === 0x7f) return '\u2421';
  return '\ufffd';
}

/** Partner text's lines, each free of control and bidi characters (tab kept). */
export function safeLines(text: string): string[] {
  // The common case (clean text) costs one scan and no copy.
  const clean = text.search(UNSAFE) === -1 ? text : text.replace(UNSAFE, standIn);
  return clean.split(LINE_BREAK);
}

const ODD_BREAKS = /\r\n|[\v\f\r\x1c-\x1e\x85\u2028\u2029]/g;

/**
 * The same, as one string with every line break written as \n: what the engine keeps and every
 * door receives (JSON events for SSH, MCP, A2A and the console), so no door can forget it.
 */
export function safeText(text: string): string {
  if (text.search(UNSAFE) === -1 && text.search(ODD_BREAKS) === -1) return text;
  return text.replace(UNSAFE, standIn).replace(ODD_BREAKS, '\n');
}
