import type { RedactionSummary } from '../evidence';
import { BUILTIN_SECRET_PATTERNS, type SecretPattern, type StreamRedactor, createStreamRedactor, mergeSummaries } from '../redaction';

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
 * is still found, and a private key block is held back until it can be cut
 * whole (createStreamRedactor); a line longer than `maxLine` is passed on in pieces.
 */
export class LineRedactor {
  private pending = '';
  private readonly redactor: StreamRedactor;

  constructor(
    private readonly emit: (text: string) => void,
    patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS,
    private readonly maxLine = 64 * 1024,
  ) {
    this.redactor = createStreamRedactor(patterns);
  }

  write(chunk: string): void {
    this.pending += chunk;
    const lastNewline = this.pending.lastIndexOf('\n');
    if (lastNewline >= 0) {
      const lines = this.pending.slice(0, lastNewline).split('\n');
      this.pending = this.pending.slice(lastNewline + 1);
      const out = lines.flatMap((line) => this.redactor.push(line));
      if (out.length) this.emit(`${out.join('\n')}\n`);
    }
    if (this.pending.length > this.maxLine) {
      const out = this.redactor.push(this.pending);
      this.pending = '';
      if (out.length) this.emit(out.join('\n'));
    }
  }

  end(): RedactionSummary {
    const out = this.pending ? this.redactor.push(this.pending) : [];
    this.pending = '';
    out.push(...this.redactor.flush());
    if (out.length) this.emit(out.join('\n'));
    return mergeSummaries(this.redactor.summary);
  }
}
