import type { RedactionSummary } from '../evidence';
import { BUILTIN_SECRET_PATTERNS, emptySummary, mergeSummaries, redactText, type SecretPattern } from '../redaction';

export const DEFAULT_MAX_LOG_CHARS = 5 * 1024 * 1024;

/**
 * A task's output, capped: the first part and the last part are kept (the
 * tail holds the test summary and the failure), the middle is replaced by a
 * marker. Sizes are in characters.
 */
export class CappedLog {
  private head = '';
  private readonly tail: string[] = [];
  private tailLength = 0;
  private omitted = 0;
  private readonly headMax: number;
  private readonly tailMax: number;

  constructor(readonly maxChars = DEFAULT_MAX_LOG_CHARS) {
    this.headMax = Math.floor(maxChars / 20);
    this.tailMax = maxChars - this.headMax;
  }

  append(chunk: string): void {
    if (this.head.length < this.headMax && this.tail.length === 0) {
      const room = this.headMax - this.head.length;
      this.head += chunk.slice(0, room);
      chunk = chunk.slice(room);
    }
    if (!chunk) return;
    this.tail.push(chunk);
    this.tailLength += chunk.length;
    while (this.tailLength > this.tailMax) {
      const excess = this.tailLength - this.tailMax;
      const first = this.tail[0]!;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailLength -= first.length;
        this.omitted += first.length;
      } else {
        this.tail[0] = first.slice(excess);
        this.tailLength -= excess;
        this.omitted += excess;
      }
    }
  }

  get truncated(): boolean {
    return this.omitted > 0;
  }

  /**
   * The stored text. When truncated, the cut falls on line boundaries so no
   * half line (and no half secret) is kept on either side of the marker.
   */
  text(): string {
    const tail = this.tail.join('');
    if (!this.truncated) return this.head + tail;
    const headEnd = this.head.lastIndexOf('\n') + 1;
    const tailStart = tail.indexOf('\n') + 1;
    const keptHead = headEnd > 0 ? this.head.slice(0, headEnd) : '';
    const keptTail = tailStart > 0 ? tail.slice(tailStart) : tail;
    const dropped = this.omitted + (this.head.length - keptHead.length) + (tail.length - keptTail.length);
    return `${keptHead}\n[agent-lanes: log capped at ${this.maxChars} characters; ${dropped} characters omitted here, the end of the log follows]\n\n${keptTail}`;
  }
}

/**
 * Redacts streamed output line by line, so a secret split across two chunks
 * is still found; a line longer than `maxLine` is passed on in pieces.
 */
export class LineRedactor {
  private pending = '';
  private summary: RedactionSummary = emptySummary();

  constructor(
    private readonly emit: (text: string) => void,
    private readonly patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS,
    private readonly maxLine = 64 * 1024,
  ) {}

  write(chunk: string): void {
    this.pending += chunk;
    const lastNewline = this.pending.lastIndexOf('\n');
    if (lastNewline >= 0) {
      this.send(this.pending.slice(0, lastNewline + 1));
      this.pending = this.pending.slice(lastNewline + 1);
    }
    if (this.pending.length > this.maxLine) {
      this.send(this.pending);
      this.pending = '';
    }
  }

  end(): RedactionSummary {
    if (this.pending) this.send(this.pending);
    this.pending = '';
    return this.summary;
  }

  private send(text: string): void {
    const redacted = redactText(text, this.patterns);
    this.summary = mergeSummaries(this.summary, redacted.summary);
    this.emit(redacted.text);
  }
}
