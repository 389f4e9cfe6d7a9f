/**
 * Polite-loop detection. The room engine feeds every accepted message through one
 * detector per room; a non-null result raises the loop alarm (pause, then sever).
 *
 * Interface only is fixed here; the algorithm is free to change (see issue "Loop detection").
 * Privacy: an alarm's `reason` is shown to both agents and may be logged, so it must
 * never quote message text.
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
}

export interface LoopDetectorOptions {
  /** Messages of recent history kept per room (bounded memory). */
  window: number;
  /** Consecutive low-novelty messages (from either side) that raise the alarm. */
  threshold: number;
}

const DEFAULTS: LoopDetectorOptions = { window: 8, threshold: 6 };

/** Placeholder baseline (replaced by the corpus-tuned detector): counts messages that add no new words. */
export function createLoopDetector(options: Partial<LoopDetectorOptions> = {}): LoopDetector {
  const { window, threshold } = { ...DEFAULTS, ...options };
  let history: Set<string>[] = [];
  let stale = 0;
  const words = (t: string) => new Set(t.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean));
  return {
    observe(_sender, text) {
      const w = words(text);
      const seen = new Set(history.flatMap((h) => [...h]));
      const fresh = [...w].filter((x) => !seen.has(x)).length;
      stale = fresh <= 2 ? stale + 1 : 0;
      history.push(w);
      if (history.length > window) history.shift();
      return stale >= threshold ? { reason: `${stale} messages in a row added nothing new` } : null;
    },
    reset() {
      history = [];
      stale = 0;
    },
  };
}
