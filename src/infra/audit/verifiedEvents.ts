import { AuditChainVerifier, parseAuditLine } from '../../core/audit/audit';
import { readMetricsEvent } from '../../core/metrics/eventLine';
import type { MetricsEvent, MetricsReducer } from '../../core/metrics/metrics';
import { forEachLine } from './lines';

/** Where a log's chain broke; only the events before it were passed on. */
export interface LogBreak {
  seq: number;
  lineNumber: number;
  problem: string;
  message: string;
  /** How many events were passed on (1 to this). */
  counted: number;
}

/**
 * Streams a log and passes on only its verified prefix: each line is hashed once, by the verifier, and a line it
 * accepts is read by `read` (the first line always by the full parser). One event is held back until the next one
 * links to it, since a re-hashed event is only caught by its successor. Returns where the chain broke, if it did.
 */
export async function forEachVerifiedEvent<E>(
  file: string,
  read: (text: string, first: boolean) => E | undefined,
  onEvent: (event: E) => void,
): Promise<LogBreak | undefined> {
  const verifier = new AuditChainVerifier();
  let seq = 0;
  let broken = false;
  let pending: E | undefined;
  await forEachLine(
    file,
    (bytes) => {
      const accepted = verifier.pushBytes(bytes);
      if (broken) return;
      if (!accepted) {
        broken = true;
        return;
      }
      let text = bytes.toString('utf8');
      if (text.endsWith('\r')) text = text.slice(0, -1);
      const event = read(text, seq === 0);
      if (event === undefined) {
        broken = true;
        return;
      }
      seq++;
      if (pending !== undefined) onEvent(pending);
      pending = event;
    },
    0,
    Infinity,
    // 1 MB reads: fewer unreclaimed read buffers at a time (the peak memory), no slower.
    1024 * 1024,
  );
  const result = verifier.finish();
  if (result.ok) {
    if (pending !== undefined) onEvent(pending);
    return undefined;
  }
  if (pending !== undefined && seq < result.seq) onEvent(pending);
  const counted = pending !== undefined && seq < result.seq ? seq : pending !== undefined ? seq - 1 : 0;
  return { seq: result.seq, lineNumber: result.lineNumber, problem: result.problem, message: result.message, counted };
}

/** The words of a break, for a warning: what broke and which events were used. */
export const describeBreak = (file: string, found: LogBreak): string =>
  `Warning: ${file} is broken at seq ${found.seq} (line ${found.lineNumber}, ${found.problem}): ${found.message}`;

/** Streams one log into the metrics reducer (its verified prefix). Returns a warning when the chain breaks. */
export async function reduceAuditFile(file: string, reducer: MetricsReducer): Promise<string | undefined> {
  let repository = file;
  const found = await forEachVerifiedEvent<MetricsEvent>(
    file,
    (text, first) => {
      if (!first) return readMetricsEvent(text) ?? parseAuditLine(text);
      const event = parseAuditLine(text);
      const repoKey = event?.details.repoKey;
      if (typeof repoKey === 'string') repository = repoKey.slice(0, 12);
      return event;
    },
    (event) => reducer.add(repository, event),
  );
  return found && `${describeBreak(file, found)} Metrics count its events 1 to ${found.counted} only.`;
}
