/**
 * Polite-loop detection. The room engine feeds every accepted message through one
 * detector per room; a non-null result raises the loop alarm (pause, then sever).
 *
 * Privacy: an alarm's `reason` is shown to both agents and may be logged, so it never
 * quotes message text. The detector's state holds 32-bit hashes of tokens and of number
 * values, never words in clear, plus per-message scores; all of it is bounded.
 *
 * ## Algorithm: "does this message add anything the conversation has not already said?"
 *
 * 1. Tokens, language-agnostic. NFKC, digits of any script as 0-9, lower case; words are runs
 *    of letters/digits (inner `.,:/-_'@#=` kept: `api.example.com`, `orders-rw` stay one
 *    token); scripts written without spaces (Han, kana, Thai, …) become character bigrams;
 *    each pictograph is its own token. Plain words are cut to `stemChars` characters, a crude
 *    stemmer for most alphabetic languages. *Facts* are tokens with a digit, inner punctuation,
 *    camelCase, or inside backticks or code blocks; comments in code blocks are dropped, so a
 *    re-pasted config whose only changes are comments, whitespace, key order, quoting or case
 *    brings no new token.
 * 2. Numbers are facts judged by value, not by spelling. "2,417,332", "2.4 million" and
 *    "two point four million" are one value (compared at the precision the writer used);
 *    "47%", "0.47", "47/100", "forty-seven percent" and "188M of 400M" are one share; "340ms"
 *    is "0.34 s" and "340"; "3G" is "3072M". Clock times, dates and elapsed minutes/hours/days
 *    are noise (remembered, never news), and so is a bare counter that ticks by 1-3 after the
 *    same label ("poll 7" after "poll 6"). A fraction is known when both sides were said or its
 *    share was, unless a new count moves against a known total ("120/480" after "60/480").
 *    A lone single digit weighs as a word, not a fact.
 * 3. Novelty against memory. A bounded two-generation set of hashes remembers the last
 *    `memoryTokens` distinct tokens and values of the conversation (both sides).
 * 4. Score of one message, 0 (news) … 1 (nothing new):
 *      - 1 for a long message (`recapTokens`+) with under `minNewShare` new tokens and fewer
 *        than `recapFacts` new facts: a re-posted recap or table;
 *      - 0 for `factNews` new facts, or one new fact in a terse message (at most `terseOld`
 *        known tokens besides) or one that is mostly new (`factShare`): progress "4/9 … 41ms",
 *        a bisect step "#2197?", an answer "0.4s";
 *      - `oneFactScore` for one new fact in a mostly known message ("Plan in CI (run 4410):
 *        No changes."): weak news;
 *      - 0 for a new question (`newQuestionShare` of its words new) or an answer to a repeated
 *        one ("Any update?") with `pollNewsWords` new words;
 *      - otherwise it falls linearly from 1 to 0 as new plain words grow: a short plain
 *        statement needs most of its words new ("Europe only, it seems."), an exclamation, a
 *        message with emoji or formula words or a long message needs `richWords`.
 *    Turn shape relative to the conversation: once at least `factRate` of the messages so far
 *    brought new facts, the conversation speaks in facts, and a message without a new fact
 *    scores at least `dryScore` however many new words it has (paraphrases, praise, farewells
 *    and "after you" in any language) unless it is a paragraph of fresh argument (`richWords`
 *    new words, `freshShare` of it new); its questions need `factualQuestionShare` new words.
 *    A conversation in plain words (no facts) is judged by its words instead.
 *    Margin rule (`formulas`): each formula word (thanks, sorry, bye, confirmed; any update,
 *    still; signing off … in a dozen languages, `SOCIAL_STEMS`) in a message without new facts
 *    cancels `socialDiscount` new words. A help for conversations in plain words; it never
 *    outweighs a new fact, and the core above works without it.
 * 5. Alarm when, over the last `window` messages (from the `window - 1`th message on, so a
 *    conversation that is empty from its start is caught as soon as a later one), (a) scores sum to at least `threshold`,
 *    (b) fewer than `movingNews` of them scored 0 (two messages with news mean the work is
 *    still moving), and (c) each side sent at least `idlePerSide` messages scoring 0.5 or more
 *    (one side giving terse orders while the other reports is work, not a loop).
 *
 * Cost: a few regex passes plus O(tokens) hash and set operations: linear in the message
 * length. Texts longer than `maxScanChars` are sampled in evenly spaced slices and at most 256
 * numbers are judged per message, so a 100 KB paste costs about as much as a 16 KB one. Memory
 * per room: `memoryTokens` 32-bit hashes, 256 counter labels and `window` scores.
 */
export type Signal = 'OVER' | 'STANDBY' | null;

export interface LoopAlarm {
  /** Plain words for the agents and their humans, e.g. "8 messages in a row added nothing new". */
  reason: string;
}

export interface LoopDetector {
  /** Judge a new message from participant `sender` (0 = host, 1 = joiner). `text` has the trailing marker removed. */
  observe(sender: 0 | 1, text: string, signal: Signal): LoopAlarm | null;
  /** The humans resumed the room after an alarm: forget the evidence that raised it. */
  reset(): void;
  /** The detector's state as plain data (keys and scores, no text), for a shared backend. */
  snapshot(): LoopDetectorSnapshot;
  /** The snapshot without the two generations of keys (those travel as a journal). */
  state(): Omit<LoopDetectorSnapshot, 'young' | 'old'>;
}

/** Hashes, counter labels (hashed) and scores: no text. */
export interface LoopDetectorSnapshot {
  young: number[];
  old: number[];
  recent: Judged[];
  slots: [number, number][];
  messages: number;
  factMessages: number;
}

/** Per-message judgement, exposed for the eval tool's trace (never contains message text). */
export interface MessageScore {
  sender: 0 | 1;
  tokens: number;
  newFacts: number;
  newWords: number;
  newShare: number;
  social: boolean;
  score: number;
  windowSum: number;
}

export interface LoopDetectorOptions {
  /** Recent messages whose scores are summed. */
  window: number;
  /** Sum of scores over the window that raises the alarm. */
  threshold: number;
  /** Distinct tokens remembered per room (two generations of half this each): the bounded memory of "already said". */
  memoryTokens: number;
  /** Plain words are compared on this many leading characters. */
  stemChars: number;
  /** A message whose share of new tokens is below this adds nothing (re-posted recap, same status table). */
  minNewShare: number;
  /** … unless it brings at least this many new facts (a revised recap with new numbers is news). */
  recapFacts: number;
  /** … and has at least this many tokens (a short status line is judged by the rules below). */
  recapTokens: number;
  /** Without a new fact, a message with at most this many new plain words scores 1 (empty) … */
  emptyWords: number;
  /** … and one with at least this many scores 0; in between the score falls linearly. */
  richWords: number;
  /** In a short plain answer or statement, this share of its tokens being new words makes it news. */
  shortNewShare: number;
  /** An answer to a repeated question ("Any update?") with this many new non-formula words reports progress (one in a conversation in words). */
  pollNewsWords: number;
  /** A question whose share of new (non-formula) words reaches this asks something new. */
  newQuestionShare: number;
  /** … in a conversation that speaks in facts, a fact-free question needs this share. */
  factualQuestionShare: number;
  /** Each social-formula word (thanks, bye, confirmed …) cancels this many new plain words. */
  socialDiscount: number;
  /** A conversation where at least this share of messages brought new facts treats fact-free ones strictly. */
  factRate: number;
  /** The least score of a fact-free message in a conversation that speaks in facts. */
  dryScore: number;
  /** … except for a message with `richWords` new words making up this share of it (fresh argument, not rephrased praise). */
  freshShare: number;
  /** Each side must have sent this many empty-ish messages (score ≥ 0.5) in the window. */
  idlePerSide: number;
  /** This many messages with news in the window mean the work is still moving. */
  movingNews: number;
  /** A message with this many new facts is news … */
  factNews: number;
  /** … so is one with fewer whose share of new tokens reaches this; */
  factShare: number;
  /** … or one with at most this many known tokens besides (a terse "2023-03: 51,330,806 ✓"); */
  terseOld: number;
  /** … any other with some new fact scores this. */
  oneFactScore: number;
  /** Use the formula word lists (thanks, bye, any update… in some languages). Off, the detector knows no language. */
  formulas: boolean;
  /** Texts longer than this are sampled (keeps 100 KB messages cheap). */
  maxScanChars: number;
  /** Optional per-message trace for tuning (the eval tool prints it). */
  trace?: (s: MessageScore) => void;
}

export const LOOP_DEFAULTS: Readonly<LoopDetectorOptions> = {
  window: 6,
  threshold: 4,
  memoryTokens: 8192,
  stemChars: 6,
  minNewShare: 0.25,
  recapFacts: 3,
  recapTokens: 12,
  emptyWords: 2,
  richWords: 10,
  shortNewShare: 0.6,
  newQuestionShare: 0.4,
  factualQuestionShare: 0.6,
  pollNewsWords: 2,
  socialDiscount: 2,
  factRate: 0.3,
  movingNews: 2,
  idlePerSide: 2,
  dryScore: 0.7,
  freshShare: 0.7,
  factNews: 2,
  factShare: 0.5,
  terseOld: 3,
  oneFactScore: 0.3,
  formulas: true,
  maxScanChars: 16 * 1024,
};

// Scripts written without spaces: their words are approximated by character bigrams.
const UNSPACED = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Thai}\\p{Script=Lao}\\p{Script=Khmer}\\p{Script=Myanmar}ー';
const WORD = `[\\p{L}\\p{N}\\p{M}_]+(?:[.,:/\\-_'’@#=][\\p{L}\\p{N}\\p{M}_]+)*`;
const TOKEN = new RegExp(`(\`)|([${UNSPACED}]+)|(\\p{Extended_Pictographic})|(${WORD})`, 'gu');
const SPECIFIC_CHARS = /[\p{N}_./:@#=\\]/u;
const CAMEL = /\p{Ll}\p{Lu}/u;
const MAX_KEY = 64;
const VERSION = /^v\d+(?:\.\d+)+$/;

// ---------------------------------------------------------------------------------------------
// Numbers are judged by value, not by spelling: "41%", "41 percent", "0.41" and "492/1200" are one
// fact; "2.4 million" is the already-known 2,417,332 said roughly. Clock times, dates, elapsed
// minutes and counters that tick by one are noise: remembered, never news.

const NUM = String.raw`\d{1,3}(?:[,'’\u00a0\u202f]\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?`;
// Units, longest first within a family; the value is scaled to a common base (seconds, bytes, 1).
const RATIO_UNITS = String.raw`%|percent|per\s?cent|pct|por\s?cento|por\s?ciento|pour\s?cent|prozent|procent|процент[а-я]*|yüzde|퍼센트|phần\s?trăm|प्रतिशत|pp`;
const TIME_UNITS = String.raw`milliseconds?|millisekunden|milisegundos?|миллисекунд[а-я]*|ms|µs|μs|us|ns|sec|secs|seconds?|s|segundos?|sekund[a-z]*|секунд[а-я]*|saniye|초|giây|秒`;
const ELAPSED_UNITS = String.raw`min|mins|minutes?|minutos?|minuten|minuti|minut[a-z]*|минут[а-я]*|мин|dakika|phút|분|分钟?|मिनट|m|h|hrs?|hours?|horas?|stunden?|ore|godzin[a-z]*|час[а-я]*|saat|giờ|시간|時間|घंटे|d|days?|días?|dias?|tage?n?|дн[а-я]*|gün|ngày|일|天`;
const SCALE_UNITS = String.raw`k|K|thousand|mil|M|mio|million|millions|milliones|millones|milhões|milioni|mln|млн|B|bn|billion|mrd|KB|kB|KiB|MB|MiB|Mi|GB|GiB|Gi|G|TB|TiB|Ti|T|МБ|ГБ|КБ|x|×`;
const UNIT = `${RATIO_UNITS}|${ELAPSED_UNITS}|${TIME_UNITS}|${SCALE_UNITS}`;
const AFTER = String.raw`(?![\p{L}\p{N}_]|[.,:]\d)`;
const NUMBER = new RegExp(
  String.raw`(?<![\p{L}\p{N}_.,:/\\\-])(?:` +
    String.raw`(\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?)?|\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?)` + // 1: date or clock time
    String.raw`|(\d+h\d+m(?:\d+s)?|\d+h\d+s|\d+m\d+s)` + // 2: compound elapsed time
    `|(${NUM})\\s?(${UNIT})?${AFTER}(?:\\s?(?:/|of|out of|из|de|von|sur|su|dari|trên)\\s?(${NUM})\\s?(${UNIT})?${AFTER})?` + // 3-6: a [unit] [of b [unit]]
    `)${AFTER}`,
  'gu',
);
const RATIO_UNIT = new RegExp(`^(?:${RATIO_UNITS})$`, 'u');
const ELAPSED_UNIT = new RegExp(`^(?:${ELAPSED_UNITS})$`, 'u');

// Scales per unit (shared arrays: no allocation per number).
const ONE: readonly number[] = [1];
const MILLI: readonly number[] = [1e-3];
const MICRO: readonly number[] = [1e-6];
const NANO: readonly number[] = [1e-9];
const KILO: readonly number[] = [1e3];
const KB: readonly number[] = [1e3, 1024];
const MB: readonly number[] = [1e6, 2 ** 20];
const GB: readonly number[] = [1e9, 2 ** 30];
const TB: readonly number[] = [1e12, 2 ** 40];
const GIGA: readonly number[] = [1e9];
const MEGA: readonly number[] = [1e6];
const MINUTE: readonly number[] = [60];
const DAY: readonly number[] = [86400];
const HOUR: readonly number[] = [3600];

function unitScale(unit: string | undefined): readonly number[] {
  if (!unit) return ONE;
  const u = unit.replace(/\s/g, '');
  switch (u) {
    case 'ms':
    case 'millisecond':
    case 'milliseconds':
    case 'millisekunden':
    case 'milisegundo':
    case 'milisegundos':
      return MILLI;
    case 'µs':
    case 'μs':
    case 'us':
      return MICRO;
    case 'ns':
      return NANO;
    case 'k':
    case 'K':
    case 'thousand':
    case 'mil':
      return KILO;
    case 'KB':
    case 'kB':
    case 'KiB':
    case 'КБ':
      return KB;
    case 'M':
    case 'MB':
    case 'MiB':
    case 'Mi':
    case 'МБ':
      return MB;
    case 'G':
    case 'GB':
    case 'GiB':
    case 'Gi':
    case 'ГБ':
      return GB;
    case 'T':
    case 'TB':
    case 'TiB':
    case 'Ti':
      return TB;
    case 'B':
    case 'bn':
    case 'billion':
    case 'mrd':
      return GIGA;
  }
  if (u.startsWith('миллисекунд')) return MILLI;
  if (/^(?:mio|mln|млн|million|millions|milliones|millones|milhões|milioni)$/u.test(u)) return MEGA;
  if (ELAPSED_UNIT.test(u)) return /^(?:m|min|mins|minut|minuto|минут|мин|dakika|phút|분|分|मिनट)/u.test(u) ? MINUTE : /^(?:d|day|dí|dia|tag|дн|gün|ngày|일|天)/u.test(u) ? DAY : HOUR;
  return ONE;
}

function parseNum(s: string): { v: number; sig: number } {
  let t = s;
  if (!PLAIN_DIGITS.test(t)) {
    t = t.replace(/[\u00a0\u202f'’]/g, '');
    // "2,417,332" groups thousands; "41,2" is a decimal comma.
    t = /^\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(t) ? t.replace(/,/g, '') : t.replace(',', '.');
  }
  // Significant digits: leading zeros never count, trailing zeros of an integer do not either.
  let first = 0;
  while (first < t.length && (t[first] === '0' || t[first] === '.')) first++;
  const dot = t.indexOf('.');
  let last = t.length;
  if (dot < 0) while (last > first && t[last - 1] === '0') last--;
  const sig = last - first - (dot >= first ? 1 : 0);
  return { v: Number(t), sig: Math.max(1, sig) };
}
const PLAIN_DIGITS = /^\d+(?:\.\d+)?$/;

// English number words ("forty-seven percent", "two point four million", "a third"), rewritten to digits first.
const SMALL: Record<string, number> = {};
'zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen'
  .split(' ')
  .forEach((w, i) => (SMALL[w] = i));
'twenty thirty forty fifty sixty seventy eighty ninety'.split(' ').forEach((w, i) => (SMALL[w] = 20 + i * 10));
const SCALES: Record<string, number> = { hundred: 100, thousand: 1e3, million: 1e6, billion: 1e9 };
const PARTS: Record<string, number> = { half: 2, halves: 2, third: 3, thirds: 3, quarter: 4, quarters: 4, fifth: 5, fifths: 5, sixth: 6, sixths: 6, seventh: 7, sevenths: 7, eighth: 8, eighths: 8, tenth: 10, tenths: 10 };
const NUMBER_WORD = `(?:${[...Object.keys(SMALL), ...Object.keys(SCALES), 'point'].join('|')})`;
const PART_WORD = `(?:${Object.keys(PARTS).join('|')})`;
const NUMBER_WORDS = new RegExp(
  `\\b(?:(?:a[\\s-]+)?${NUMBER_WORD}(?:[\\s-]+(?:and[\\s-]+)?${NUMBER_WORD})*(?:[\\s-]+(${PART_WORD}))?|a[\\s-]+(${PART_WORD}))\\b`,
  'gi',
);

function wordsToDigits(text: string): string {
  return text.replace(NUMBER_WORDS, (phrase: string, part1: string | undefined, part2: string | undefined) => {
    const part = part1 ?? part2;
    const words = phrase.toLowerCase().split(/[\s-]+/).filter((w) => w !== 'and');
    if (part) words.pop();
    // "a fix", "one more", "a million thanks" after digits ("2.4 million") stay as they are
    if (!part && (!words.some((w) => w in SMALL) || (words.length === 1 && words[0] === 'one'))) return phrase;
    let total = 0;
    let group = 0;
    let decimals = '';
    let afterPoint = false;
    let scale = '';
    words.forEach((w, i) => {
      if (w in SCALES && w !== 'hundred' && i === words.length - 1) scale = ` ${w}`; // "2.4 million": left to the unit parser
      else if (w === 'point') afterPoint = true;
      else if (afterPoint) decimals += w in SMALL && SMALL[w] < 10 ? SMALL[w] : '';
      else if (w === 'a') group += 1;
      else if (w === 'hundred') group = (group || 1) * 100;
      else if (w in SCALES) {
        total += (group || 1) * SCALES[w];
        group = 0;
      } else group += SMALL[w] ?? 0;
    });
    const value = `${total + group}${decimals ? `.${decimals}` : ''}`;
    return part ? ` ${value}/${PARTS[part.toLowerCase()]}` : ` ${value}${scale}`;
  });
}

/**
 * Social formulae (thanks, apologies, goodbyes, confirmations) in common languages, as
 * word starts. A margin signal only: it can make a message with no new facts count as
 * empty, never make a message with new facts count as a loop.
 */
const SOCIAL_STEMS = [
  // en
  'thank', 'thx', 'ty', 'appreciat', 'cheers', 'welcome', 'pleasure', 'bye', 'goodbye', 'farewell', 'care', 'sorry', 'apolog',
  'great', 'awesome', 'perfect', 'nice', 'glad', 'likewise', 'agree', 'confirm', 'aligned', 'understood', 'understand',
  'ack', 'roger', 'noted', 'exactly', 'correct', 'indeed', 'enjoy', 'wish', 'congrat', 'standing', 'anytime',
  'night', 'weekend', 'teamwork', 'happy', 'hope', 'absolutely', 'definitely',
  'obliged', 'friend', 'mate', 'lovely', 'wonderful', 'fantastic', 'brilliant', 'excellent', 'superb', 'amazing', 'kind',
  'collaborat', 'evening', 'morning', 'soon', 'later', 'talk', 'luck', 'cheer', 'bravo', 'kudos', 'grateful', 'gratitude',
  'sounds', 'good',
  // status-poll formulae: asking for news and saying there is none
  'still', 'yet', 'nothing', 'anything', 'update', 'news', 'progress', 'change', 'pending', 'waiting', 'ready', 'again',
  'status', 'running', 'continu', 'unchanged',
  // sign-off formulae
  'signing', 'logging', 'closing', 'wrap', 'disconnect', 'terminat', 'over', 'out',
  // es / pt / it / fr
  'gracias', 'placer', 'igualmente', 'perdón', 'perdon', 'siento', 'adiós', 'adios', 'hasta', 'saludos', 'genial', 'perfecto',
  'obrigad', 'valeu', 'tchau', 'desculp', 'grazie', 'prego', 'ciao', 'scusa', 'merci', 'revoir', 'parfait',
  'désolé', 'desole', 'bonne', 'excelente', 'amable', 'gusto',
  'plaisir', 'bientôt', 'bientot', 'soirée', 'soiree', 'beaucoup', 'rien', 'muchas', 'nada', 'luego', 'pronto', 'cuídate',
  'encantad', 'mille', 'presto', 'piacere', 'muito', 'prazer', 'logo',
  'novedad', 'sigue', 'todavía', 'todavia', 'aún', 'cambio', 'encore', 'toujours', 'nouvelles', 'changement', 'ancora',
  'niente', 'novità', 'ainda', 'novidade',
  // de / nl
  'danke', 'bitte', 'gerne', 'tschüss', 'tschuss', 'gleichfalls', 'super', 'entschuldig', 'prima', 'dank', 'zusammenarbeit',
  'ursache', 'bedankt', 'schön', 'schon', 'wunderbar', 'toll', 'abend', 'bald', 'vielen',
  'immer', 'nichts', 'neues', 'änderung', 'stand', 'läuft', 'lauft',
  // ru / pl
  'спасибо', 'пожалуйста', 'извин', 'до свидания', 'dzięk', 'dziek',
];
const SOCIAL_CJK = ['まだ', '進捗', '変化なし', '还在', '进展', 'ありがと', 'お疲れ', 'よろしく', 'すみません', '申し訳', 'どういたしまして', 'こちらこそ', '助かり', '谢谢', '感谢', '辛苦', '不客气', '再见', '감사', '고맙', '수고'];
// Short entries must match whole words ("ty" is not "type"); longer ones are word starts.
const SOCIAL_WORD = new RegExp(`^(?:${SOCIAL_STEMS.map((w) => (w.length <= 4 ? `${w}$` : w)).join('|')})`, 'u');


const ASCII = /^[\x00-\x7f]*$/;
// Digits of other scripts (Arabic-Indic, Devanagari, Thai, …) read as 0-9, so "٤٧٪" is "47%".
const DIGITS = /[^\P{Nd}0-9]/gu;
const DIGIT_ZEROS = [0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66, 0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x17e0, 0x1810];
function asciiDigit(d: string): string {
  const c = d.codePointAt(0)!;
  const zero = DIGIT_ZEROS.find((z) => c >= z && c <= z + 9);
  return zero === undefined ? d : String(c - zero);
}

/** 32-bit FNV-1a: the detector's memory holds these, never words in clear. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  const n = Math.min(s.length, MAX_KEY); // a base64 blob is judged on its start
  for (let i = 0; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h & 0x3fffffff; // 30 bits: a small integer in V8, no heap number per key
}

/** Sample very long texts in evenly spaced slices so the cost stays bounded. */
function scanText(text: string, max: number): string {
  if (text.length <= max) return text;
  const slices = 8;
  const size = Math.floor(max / slices);
  const step = Math.floor((text.length - size) / (slices - 1));
  let out = '';
  for (let i = 0; i < slices; i++) out += text.slice(i * step, i * step + size) + '\n';
  return out;
}

// Comments in pasted code are not facts: a re-pasted config with a reworded comment is the same config.
const FENCE = /```[^\n]*\n([\s\S]*?)(?:```|$)/g;
const COMMENT_LINE = /^\s*(?:#|\/\/|--|;|<!--).*$/gm;
const TRAILING_COMMENT = /\s(?:#|\/\/|--)\s.*$/gm;
function stripComments(text: string): string {
  if (!text.includes('```')) return text;
  return text.replace(FENCE, (block: string, body: string) => `\`\`\`\n${body.replace(COMMENT_LINE, '').replace(TRAILING_COMMENT, '')}\n\`\`\``);
}

export const FACT = 0;
export const PLAIN = 1;
export const PICTOGRAPH = 2;
type Kind = typeof FACT | typeof PLAIN | typeof PICTOGRAPH;

/** A number as the tokenizer found it: hashes to look up (at the precision it was written) and to remember. */
interface NumberSeen {
  /** Known if any of these is known. */
  check: number[];
  /** Known if all of these are known (a fraction whose both sides were said). */
  checkAll: number[];
  remember: number[];
  /** Clock time, date, elapsed time: never news. */
  noise: boolean;
  /** Integer value and the hash of the word before it, for counters that tick ("poll 7", "check #8"). */
  slot: number;
  value: number;
  /** A bare integer: may be a counter. */
  counter: boolean;
  /** A single digit ("3", "#5", "6x"): as much news as a word, not a fact. */
  small: boolean;
}

const MAX_NUMBERS = 256;
const groups: string[] = [];
/** A value rounded to `level` significant digits, as a hash (no strings: this runs for every number). */
function valueKey(v: number, level: number, magnitude = Math.floor(Math.log10(Math.abs(v)))): number {
  if (v === 0 || !Number.isFinite(v)) return level;
  let e = magnitude - level + 1;
  let m = Math.round(v / pow10(e));
  if (Math.abs(m) >= POW10[POW0 + level]) m = Math.round(v / pow10(++e));
  let h = Math.imul(0x9e3779b1, level + 1) ^ (e + 1024);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) ^ m;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ Math.floor(m / 4294967296);
  return (h ^ (h >>> 16)) & 0x3fffffff; // 30 bits: a small integer in V8, no heap number per key
}
const POW0 = 330;
const POW10 = Float64Array.from({ length: 2 * POW0 + 1 }, (_, i) => Number(`1e${i - POW0}`));
const pow10 = (e: number) => POW10[POW0 + e] ?? 10 ** e;
const levelOf = (sig: number) => (sig <= 2 ? 2 : sig === 3 ? 3 : 6);

/** Hashes under which a value is remembered: every precision, and for a share also its percent form. */
function rememberValue(out: number[], v: number, ratio: boolean) {
  if (!Number.isFinite(v)) return;
  const f = Math.round(v * 1e9) / 1e9;
  const magnitude = Math.floor(Math.log10(Math.abs(f)));
  out.push(valueKey(f, 2, magnitude), valueKey(f, 3, magnitude), valueKey(f, 6, magnitude));
  if (ratio) rememberValue(out, v * 100, false);
}

const LABEL_CHAR = /[\p{L}\p{N}_.\-#№]/u;
function isLabelChar(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 46 || c === 45 || c === 35;
  return LABEL_CHAR.test(ch);
}

/** The label a number belongs to: the token just before it ("poll 7", "check #8", "p99 41ms"), if any. */
function slotBefore(text: string, offset: number): string {
  let end = offset;
  while (end > 0 && offset - end < 4 && !isLabelChar(text[end - 1]) && text[end - 1] !== '\n') end--;
  let start = end;
  while (start > 0 && end - start < 32 && isLabelChar(text[start - 1])) start--;
  return text.slice(start, end);
}

// One scratch record, refilled for every number: judging is synchronous, and this runs for every number.
const seen: NumberSeen = { check: [], checkAll: [], remember: [], noise: false, slot: 0, value: NaN, counter: false, small: false };

function readNumber(m: string[], text: string, offset: number): NumberSeen {
  seen.check.length = seen.checkAll.length = seen.remember.length = 0;
  seen.noise = seen.counter = seen.small = false;
  seen.slot = 0;
  seen.value = NaN;
  if (m[1]) {
    seen.noise = true;
    return seen;
  }
  if (m[2]) {
    const [, h, mi, s] = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(m[2]) ?? [];
    const secs = Number(h ?? 0) * 3600 + Number(mi ?? 0) * 60 + Number(s ?? 0);
    rememberValue(seen.remember, secs, false);
    seen.noise = true;
    return seen;
  }
  const a = parseNum(m[3]);
  const ua = m[4]?.replace(/\s/g, '');
  const isRatio = !!ua && RATIO_UNIT.test(ua) && ua !== 'pp';
  if (ua && ELAPSED_UNIT.test(ua)) seen.noise = true; // "27 min waiting", "3 days ago"
  const scales = unitScale(ua);
  if (m[5]) {
    // a/b, "a of b": the fact is the share; both sides and the rest are remembered too.
    const b = parseNum(m[5]);
    const sb = unitScale(m[6] ?? m[4]);
    const av = a.v * scales[0];
    const bv = b.v * sb[0];
    const level = Math.min(3, levelOf(Math.max(a.sig, b.sig)));
    // A share is its own fact, except all or nothing ("30/30 pods" is a count, not a share).
    if (bv !== 0 && av !== 0 && av !== bv) {
      seen.check.push(valueKey(av / bv, level), valueKey((av / bv) * 100, level));
      rememberValue(seen.remember, av / bv, true);
    }
    seen.checkAll.push(valueKey(av, levelOf(a.sig)), valueKey(bv, levelOf(b.sig)));
    rememberValue(seen.remember, av, false);
    rememberValue(seen.remember, bv, false);
    return seen;
  }
  const level = levelOf(a.sig);
  seen.small = a.v < 10 && Number.isInteger(a.v) && (!ua || ua === 'x' || ua === '×');
  if (!isRatio && scales[0] !== 1) rememberValue(seen.remember, a.v, false); // "340" is the "340ms" said before
  for (const s of scales) {
    const v = a.v * s;
    seen.check.push(valueKey(isRatio ? a.v : v, level));
    rememberValue(seen.remember, isRatio ? a.v / 100 : v, isRatio);
  }
  const w = slotBefore(text, offset);
  if (w) {
    seen.slot = hash(w.toLowerCase());
    seen.value = a.v * scales[0];
    seen.counter = !ua && Number.isInteger(a.v);
  }
  return seen;
}

/**
 * Calls `visit` for every token and `number` for every number (no arrays: this runs on every
 * message); returns the count of formula words.
 */
function tokenize(
  raw: string,
  stemChars: number,
  formulas: boolean,
  visit: (key: number, kind: Kind) => void,
  number: (n: NumberSeen) => void,
): number {
  const ascii = ASCII.test(raw);
  let text = ascii ? raw : raw.normalize('NFKC').replace(DIGITS, asciiDigit); // ASCII is already in NFKC
  text = stripComments(text);
  if (/[a-z]/i.test(text)) text = wordsToDigits(text);
  if (/\d/.test(text)) {
    let numbers = 0;
    const source = text;
    text = text.replace(NUMBER, (m0: string, m1: string, m2: string, m3: string, m4: string, m5: string, m6: string, offset: number) => {
      // A table of thousands of numbers is judged on its first ones: bounded cost and memory.
      if (numbers++ < MAX_NUMBERS) {
        groups[0] = m0;
        groups[1] = m1;
        groups[2] = m2;
        groups[3] = m3;
        groups[4] = m4;
        groups[5] = m5;
        groups[6] = m6;
        number(readNumber(groups, source, offset));
      }
      return ' ';
    });
  }
  let socialHits = 0;
  let inCode = false;
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(text); m; m = TOKEN.exec(text)) {
    if (m[1]) {
      inCode = !inCode;
    } else if (m[2]) {
      const run = m[2].toLowerCase();
      const kind = inCode ? FACT : PLAIN;
      if (run.length === 1) visit(hash(run), kind);
      for (let i = 0; i + 1 < run.length; i++) visit(hash(run.slice(i, i + 2)), kind);
    } else if (m[3]) {
      visit(hash(m[3]), PICTOGRAPH);
    } else {
      const w = m[4];
      const lw = w.toLowerCase();
      if (inCode || SPECIFIC_CHARS.test(w) || CAMEL.test(w)) {
        visit(hash(VERSION.test(lw) ? lw.slice(1) : lw), FACT); // "v0.9.3" is "0.9.3"
      } else {
        if (formulas && SOCIAL_WORD.test(lw)) socialHits++;
        visit(hash(lw.length > stemChars ? lw.slice(0, stemChars) : lw), PLAIN);
      }
    }
  }
  if (formulas && !ascii) {
    const lower = text.toLowerCase();
    for (const s of SOCIAL_CJK) if (lower.includes(s)) socialHits++;
  }
  return socialHits;
}

const QUESTION = /[?？¿]/u;
// Exclamations without facts are how pleasantries sound in most languages ("Καλή συνέχεια!").
const EXCLAIM = /[!！¡]/u;

interface Judged extends MessageScore {
  emoji: boolean;
  ask: 'new' | 'stale' | null;
}

/** In a journal of what the detector remembered: the young generation became the old one here. */
export const ROTATED = -1;

/**
 * `journal`, when given, receives every key the detector remembers and ROTATED at each change of
 * generation, in order: a shared backend replays that on its copy instead of rewriting it all.
 */
export function createLoopDetector(options: Partial<LoopDetectorOptions> = {}, from?: LoopDetectorSnapshot, journal?: number[]): LoopDetector {
  const o: LoopDetectorOptions = { ...LOOP_DEFAULTS, ...options };
  // Bounded memory of what was said, in two generations: a token is known while it sits in
  // either; when the young one fills up it becomes the old one. O(1), no per-token deletes.
  let young = new Set<number>(from?.young);
  let old = new Set<number>(from?.old);
  let recent: Judged[] = from?.recent ?? [];
  // Counters: the last integer seen after each word ("poll 7"), to tell a tick from a new value.
  let slots = new Map<number, number>(from?.slots);
  let messages = from?.messages ?? 0;
  let factMessages = from?.factMessages ?? 0;

  const known = (key: number) => young.has(key) || old.has(key);
  const remember = (key: number) => {
    if (young.has(key)) return;
    young.add(key);
    journal?.push(key);
    if (young.size >= o.memoryTokens / 2) {
      old = young;
      young = new Set();
      journal?.push(ROTATED);
    }
  };

  /**
   * A fraction is known when both sides were said, or when its share was said in another form
   * ("41%" then "492/1200"), unless a new count moves against a known total ("120/480" after "60/480").
   */
  const isKnown = (n: NumberSeen) => {
    if (!n.checkAll.length) return n.check.some(known);
    const [a, b] = n.checkAll.map(known);
    return (a && b) || (n.check.some(known) && !(b && !a));
  };

  const judge = (sender: 0 | 1, text: string): Judged => {
    let newFacts = 0;
    let newWords = 0;
    let counted = 0;
    let pictographs = 0;
    const here = new Set<number>();
    const judgeNumber = (n: NumberSeen) => {
      if (n.noise) return;
      if (n.slot) {
        const last = slots.get(n.slot);
        if (slots.size > 256) slots = new Map(); // bounded; losing it only forgets old labels
        slots.set(n.slot, n.value);
        if (n.counter && last !== undefined && n.value - last >= 1 && n.value - last <= 3) return; // a counter ticking
      }
      const key = n.check[0] ?? n.checkAll[0];
      if (key === undefined || here.has(key)) return;
      here.add(key);
      counted++;
      if (isKnown(n)) return;
      if (n.small) newWords++;
      else newFacts++;
    };
    const socialHits = tokenize(
      scanText(text, o.maxScanChars),
      o.stemChars,
      o.formulas,
      (key, kind) => {
        if (here.has(key)) return;
        here.add(key);
        if (kind === PICTOGRAPH) return void pictographs++; // reactions carry no facts, new or not
        counted++;
        if (known(key)) return;
        if (kind === FACT) newFacts++;
        else newWords++;
      },
      (n) => {
        judgeNumber(n);
        // Remembered at once: the same value twice in one message ("47%, i.e. 0.47") is one fact.
        for (const k of n.remember) remember(k);
      },
    );
    for (const k of here) remember(k);
    const newShare = counted ? (newFacts + newWords) / counted : 0;
    const social = newFacts === 0 && socialHits > 0;
    const words = newWords - (social ? o.socialDiscount * socialHits : 0);
    // Questions steer the work: a new one ("Which region?") moves it, a repeated one ("Any update?") does not.
    const isQuestion = QUESTION.test(text);
    // How much this conversation speaks in facts: after a fact-dense start, a fact-free message
    // must bring many new words to count as news (praise, paraphrase and farewells in any language).
    const factRate = messages ? factMessages / messages : 0;
    const questionShare = factRate >= o.factRate ? o.factualQuestionShare : o.newQuestionShare;
    const ask = !isQuestion ? null : newFacts > 0 || (words >= 1 && words / counted >= questionShare) ? 'new' : 'stale';
    const last = recent[recent.length - 1];
    const answering = last && last.sender !== sender ? last.ask : null;
    let score: number;
    const exclaims = EXCLAIM.test(text);
    if (newShare < o.minNewShare && newFacts < o.recapFacts && counted >= o.recapTokens) score = 1;
    else if (newFacts >= o.factNews || (newFacts > 0 && (newShare >= o.factShare || counted - newFacts - newWords <= o.terseOld)) || ask === 'new') score = 0;
    else if (newFacts > 0) score = o.oneFactScore;
    // A poll's answer is either "no change" (all formula words) or progress: `pollNewsWords` new words make it news.
    else if (answering === 'stale' && !isQuestion && !exclaims && words >= (factRate >= o.factRate ? o.pollNewsWords : 1)) score = 0;
    else {
      // A short plain statement or answer is news when most of its words are new ("Europe only,
      // it seems."); formula words (thanks, still, any update…) do not count as new. A question
      // that repeats, or an exclamation, must bring up to `richWords` new words instead.
      const lenient = answering === 'new' || (!isQuestion && !exclaims && !social && pictographs === 0 && factRate < o.factRate);
      const rich = lenient ? Math.min(o.richWords, Math.max(1, Math.ceil(counted * o.shortNewShare))) : o.richWords;
      const empty = (rich * o.emptyWords) / o.richWords;
      score = Math.min(1, Math.max(0, (rich - words) / (rich - empty)));
    }
    // Fact-free talk in a conversation that speaks in facts: words alone do not make it news.
    // A paragraph of fresh argument (`richWords` new words, `freshShare` of it new) is still news.
    const fresh = newWords >= o.richWords && newShare >= o.freshShare;
    if (newFacts === 0 && factRate >= o.factRate && !fresh && ask !== 'new' && !(answering === 'stale' && !isQuestion)) score = Math.max(score, o.dryScore);
    messages++;
    if (newFacts > 0) factMessages++;
    return { sender, tokens: counted, newFacts, newWords, newShare, social, score, windowSum: 0, emoji: counted === 0, ask };
  };

  const state = () => ({ recent, slots: [...slots], messages, factMessages });
  return {
    observe(sender, text) {
      const s = judge(sender, text);
      recent.push(s);
      if (recent.length > o.window) recent.shift();
      s.windowSum = recent.reduce((a, r) => a + r.score, 0);
      o.trace?.({ ...s });
      // Both sides must be idling: one side giving terse orders while the other reports is work.
      const idle = (side: 0 | 1) => recent.filter((r) => r.sender === side && r.score >= 0.5).length >= o.idlePerSide;
      const bothSides = idle(0) && idle(1);
      // One message with a new fact in the window means the work is still moving.
      const moving = recent.filter((r) => r.score === 0).length >= o.movingNews;
      // A conversation empty from its start is judged from its (window - 1)th message, like any later loop.
      if (recent.length < o.window - 1 || s.windowSum < o.threshold || !bothSides || moving) return null;
      return { reason: describe(recent) };
    },
    reset() {
      recent = [];
    },
    snapshot: () => ({ young: [...young], old: [...old], ...state() }),
    state,
  };
}

/** Why the room was stopped, in plain words and without quoting anything. */
function describe(recent: Judged[]): string {
  const n = recent.length;
  const emoji = recent.filter((r) => r.emoji).length;
  const social = recent.filter((r) => r.social).length;
  const what =
    emoji * 2 >= n
      ? 'were mostly emoji and reactions'
      : social * 2 >= n
        ? 'traded thanks, confirmations or goodbyes'
        : 'repeated what was already said (recaps, confirmations or unchanged status)';
  return `the last ${n} messages from both sides ${what} and added no new information`;
}
