import { AuditChainVerifier, parseAuditLine, type AuditEvent } from '../../core/audit/audit';
import { readMetricsEvent } from '../../core/metrics/eventLine';
import type { MetricsEvent, MetricsReducer } from '../../core/metrics/metrics';
import { forEachLine } from './lines';

/**
 * Streams one log into the reducer, counting only the verified prefix. Returns a warning when the chain breaks.
 * Each line is hashed once, by the verifier; a line it accepts is read without hashing it again (readMetricsEvent).
 */
export async function reduceAuditFile(file: string, reducer: MetricsReducer): Promise<string | undefined> {
  const verifier = new AuditChainVerifier();
  let seq = 0;
  let repository = file;
  let broken = false;
  // One event is held back until the next one links to it: a re-hashed event is only caught by its successor.
  let pending: MetricsEvent | undefined;
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
      const event = seq === 0 ? parseAuditLine(text) : (readMetricsEvent(text) ?? parseAuditLine(text));
      if (!event) {
        broken = true;
        return;
      }
      if (++seq === 1) {
        const repoKey = (event as AuditEvent).details.repoKey;
        if (typeof repoKey === 'string') repository = repoKey.slice(0, 12);
      }
      if (pending) reducer.add(repository, pending);
      pending = event;
      // 1 MB reads: fewer unreclaimed read buffers at a time (the peak memory), no slower.
    },
    0,
    Infinity,
    1024 * 1024,
  );
  const result = verifier.finish();
  if (result.ok) {
    if (pending) reducer.add(repository, pending);
    return undefined;
  }
  if (pending && seq < result.seq) reducer.add(repository, pending);
  const counted = pending && seq < result.seq ? seq : pending ? seq - 1 : 0;
  return `Warning: ${file} is broken at seq ${result.seq} (line ${result.lineNumber}, ${result.problem}): ${result.message} Metrics count its events 1 to ${counted} only.`;
}
