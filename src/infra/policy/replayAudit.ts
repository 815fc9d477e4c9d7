import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseAuditLine, type AuditEvent } from '../../core/audit/audit';
import type { EffectivePolicy } from '../../core/policy/merge';
import {
  FACTS_FOLDER,
  PolicyReplay,
  factsFromFile,
  readDecision,
  type RecordedDecision,
  type ReplayReport,
} from '../../core/policy/replay';
import { describeBreak, forEachVerifiedEvent } from '../audit/verifiedEvents';

/**
 * Replays the policy decisions of audit logs against a candidate policy. Each
 * log is streamed and its hash chain verified as it is read (as `agent-lanes
 * metrics` reads it); a broken log is replayed up to the break, with a
 * warning. Facts kept in a file beside a log are read after its events, and
 * only used when their SHA-256 is the digest the event recorded.
 */
export async function replayAuditFiles(candidate: EffectivePolicy, files: readonly string[]): Promise<ReplayReport> {
  const replay = new PolicyReplay(candidate);
  for (const file of files) await replayFile(file, replay);
  return replay.report();
}

async function replayFile(file: string, replay: PolicyReplay): Promise<void> {
  const inFiles: (RecordedDecision & { facts: { kind: 'file'; sha256: string } })[] = [];
  const accept = (event: AuditEvent) => {
    const decision = readDecision(event, file);
    if (!decision) return;
    if (decision.facts.kind === 'inline') replay.add(decision, decision.facts.value);
    else if (decision.facts.kind === 'none') replay.skip(decision, decision.facts.reason);
    else inFiles.push(decision as (typeof inFiles)[number]);
  };
  const found = await forEachVerifiedEvent(file, parseAuditLine, accept);
  if (found) replay.warn(`${describeBreak(file, found)} Only its events 1 to ${found.counted} were replayed.`);
  const folder = join(dirname(file), FACTS_FOLDER);
  for (const decision of inFiles) {
    const text = await readFile(join(folder, `${decision.facts.sha256}.json`), 'utf8').catch(() => undefined);
    const read = factsFromFile(text, decision.facts.sha256);
    if (read.ok) replay.add(decision, read.value);
    else replay.skip(decision, read.reason);
  }
}
