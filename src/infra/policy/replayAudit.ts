import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AuditChainVerifier, GENESIS_HASH, parseAuditLine, type AuditEvent } from '../../core/audit/audit';
import type { EffectivePolicy } from '../../core/policy/merge';
import {
  FACTS_FOLDER,
  PolicyReplay,
  factsFromFile,
  readDecision,
  type RecordedDecision,
  type ReplayReport,
} from '../../core/policy/replay';
import { forEachLine } from '../audit/lines';

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
  const verifier = new AuditChainVerifier();
  const inFiles: (RecordedDecision & { facts: { kind: 'file'; sha256: string } })[] = [];
  const accept = (event: AuditEvent) => {
    const decision = readDecision(event, file);
    if (!decision) return;
    if (decision.facts.kind === 'inline') replay.add(decision, decision.facts.value);
    else if (decision.facts.kind === 'none') replay.skip(decision, decision.facts.reason);
    else inFiles.push(decision as (typeof inFiles)[number]);
  };
  let lastSeq = 0;
  let lastHash = GENESIS_HASH;
  let broken = false;
  // One event is held back until the next one links to it: a re-hashed event is only caught by its successor.
  let pending: AuditEvent | undefined;
  await forEachLine(file, (bytes) => {
    verifier.pushBytes(bytes);
    if (broken) return;
    const event = parseAuditLine(bytes.toString('utf8'));
    if (!event || event.seq !== lastSeq + 1 || event.prevHash !== lastHash || (event.seq === 1 && event.action !== 'audit.created')) {
      broken = true;
      return;
    }
    if (pending) accept(pending);
    pending = event;
    lastSeq = event.seq;
    lastHash = event.hash;
  });
  const result = verifier.finish();
  if (result.ok) {
    if (pending) accept(pending);
  } else {
    if (pending && pending.seq < result.seq) accept(pending);
    const replayed = pending && pending.seq < result.seq ? pending.seq : pending ? pending.seq - 1 : 0;
    replay.warn(
      `Warning: ${file} is broken at seq ${result.seq} (line ${result.lineNumber}, ${result.problem}): ${result.message} Only its events 1 to ${replayed} were replayed.`,
    );
  }
  const folder = join(dirname(file), FACTS_FOLDER);
  for (const decision of inFiles) {
    const text = await readFile(join(folder, `${decision.facts.sha256}.json`), 'utf8').catch(() => undefined);
    const read = factsFromFile(text, decision.facts.sha256);
    if (read.ok) replay.add(decision, read.value);
    else replay.skip(decision, read.reason);
  }
}
