import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import {
  AUDIT_ACTIONS,
  AuditChainVerifier,
  GENESIS_HASH,
  genesisDetails,
  hashEvent,
  parseAuditLine,
  sealEvent,
  type AuditAction,
  type AuditEvent,
  type VerifyFailure,
  type VerifyOptions,
  type VerifyResult,
} from '../../src/core/audit/audit';

/** The lines through the verifier's text path (without terminators; a final empty string is a blank line). */
function verifyLines(lines: readonly string[], options: VerifyOptions = {}): VerifyResult {
  const verifier = new AuditChainVerifier(options);
  for (const line of lines) verifier.push(line);
  return verifier.finish();
}

/** A log's text through the verifier's text path. */
function verifyText(text: string, options: VerifyOptions = {}): VerifyResult {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return verifyLines(lines, options);
}

const REPO = 'a'.repeat(64);
const OTHER_REPO = 'b'.repeat(64);

/** A genuine log of `count` events, as the writer would produce it. */
function buildLog(count: number, repoKey = REPO): { lines: string[]; events: AuditEvent[] } {
  const lines: string[] = [];
  const events: AuditEvent[] = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= count; seq++) {
    const action: AuditAction = seq === 1 ? 'audit.created' : AUDIT_ACTIONS[seq % AUDIT_ACTIONS.length]!;
    const { event, line } = sealEvent({
      seq,
      at: new Date(Date.UTC(2026, 10, 21, 9, 0, seq)).toISOString(),
      actor: seq % 2 ? { type: 'user', id: 'dev' } : { type: 'agent', id: 'coder' },
      action,
      changeId: seq === 1 ? undefined : `c0ffee0${seq % 3}`,
      details: seq === 1 ? genesisDetails(repoKey) : { from: 'draft', to: 'sandbox', note: `step ${seq}`, diff: { hash: 'd'.repeat(64) } },
      policy: seq % 4 === 0 ? 'acme@7' : undefined,
      decisionId: seq % 5 === 0 ? `dec-${seq}` : undefined,
      prevHash,
    });
    prevHash = event.hash;
    lines.push(line);
    events.push(event);
  }
  return { lines, events };
}

function failure(result: VerifyResult): VerifyFailure {
  assert.equal(result.ok, false, `expected a broken log, got ${JSON.stringify(result)}`);
  return result as VerifyFailure;
}

/** The same lines through the byte fast path, as the file verifier reads them. */
function verifyBytes(lines: string[], options = {}): VerifyResult {
  const verifier = new AuditChainVerifier(options);
  for (const line of lines) verifier.pushBytes(Buffer.from(line, 'utf8'));
  return verifier.finish();
}

function both(lines: string[], options = {}): VerifyResult {
  const fromText = verifyLines(lines, options);
  const fromBytes = verifyBytes(lines, options);
  assert.deepEqual(fromBytes, fromText, 'the byte and text verifiers disagree');
  return fromText;
}

describe('audit chain', () => {
  it('hashes the RFC 8785 canonical form of the event without its hash', () => {
    const { events, lines } = buildLog(3);
    for (const [index, event] of events.entries()) {
      const { hash, ...rest } = event;
      const expected = createHash('sha256').update(canonicalize(rest)!, 'utf8').digest('hex');
      assert.equal(hash, expected);
      assert.equal(hashEvent(event), expected);
      // Stored lines are themselves canonical JSON.
      assert.equal(lines[index], canonicalize(event));
    }
    assert.equal(events[0]!.prevHash, GENESIS_HASH);
    assert.equal(events[1]!.prevHash, events[0]!.hash);
  });

  it('verifies a genuine log with its count and head hash, from text and from bytes', () => {
    const { lines, events } = buildLog(50);
    const result = both(lines, { expectedRepoKey: REPO });
    assert.deepEqual(result, {
      ok: true,
      count: 50,
      headHash: events[49]!.hash,
      repoKey: REPO,
      firstAt: events[0]!.at,
      lastAt: events[49]!.at,
    });
    assert.equal(verifyText(lines.join('\n') + '\n').ok, true);
  });

  it('accepts an empty log and a final blank line', () => {
    assert.deepEqual(verifyLines([]), { ok: true, count: 0, headHash: GENESIS_HASH });
    const { lines } = buildLog(3);
    assert.equal(both([...lines, '']).ok, true);
  });

  it('refuses a line that is not exactly the canonical form of its event: a forged "details" before the real one, or other key order', () => {
    const { lines } = buildLog(5);
    // The hash still matches what JSON.parse keeps (the last "details"); a reader that keeps the first sees the forgery.
    lines[2] = lines[2]!.replace('"details":', '"details":{"note":"approved by the security team"},"details":');
    let result = failure(both(lines));
    assert.equal(result.problem, 'edited');
    assert.equal(result.seq, 3);
    assert.equal(result.lineNumber, 3);
    assert.equal(result.count, 2);
    assert.match(result.message, /Event 3 on line 3 is not written in its canonical form \(a member repeated/);
    assert.equal(parseAuditLine(lines[2]), undefined, 'the history view does not show it either');

    const { lines: again } = buildLog(5);
    const event = JSON.parse(again[2]!) as Record<string, unknown>;
    again[2] = JSON.stringify(Object.fromEntries(Object.entries(event).reverse()), null, 1).replace(/\n/g, ' ');
    result = failure(both(again));
    assert.equal(result.problem, 'edited');
    assert.match(result.message, /not written in its canonical form/);
  });

  it('reports an edited line (hash left alone) at its seq', () => {
    const { lines } = buildLog(10);
    lines[4] = lines[4]!.replace('step 5', 'step five');
    const result = failure(both(lines));
    assert.equal(result.problem, 'edited');
    assert.equal(result.seq, 5);
    assert.equal(result.lineNumber, 5);
    assert.equal(result.count, 4);
    assert.match(result.message, /Event 5 on line 5 was changed/);
  });

  it('reports an edited and re-hashed line through the next line, at the edited seq', () => {
    const { lines, events } = buildLog(10);
    const forged = { ...events[4]!, details: { note: 'nothing happened' } };
    lines[4] = sealEvent({ ...forged, hash: undefined } as never).line;
    const result = failure(both(lines));
    assert.equal(result.problem, 'edited');
    assert.equal(result.seq, 5);
    assert.equal(result.lineNumber, 5);
    assert.equal(result.headHash, events[3]!.hash);
    assert.match(result.message, /re-hashed/);
  });

  it('reports a deleted line, a deleted range and a deleted first line', () => {
    const one = buildLog(10).lines;
    one.splice(6, 1);
    let result = failure(both(one));
    assert.equal(result.problem, 'deleted');
    assert.equal(result.seq, 7);
    assert.equal(result.lineNumber, 7);
    assert.match(result.message, /Event 7 is missing before line 7: a line was deleted/);

    const range = buildLog(10).lines;
    range.splice(3, 3);
    result = failure(both(range));
    assert.equal(result.problem, 'deleted');
    assert.equal(result.seq, 4);
    assert.match(result.message, /Events 4 to 6 are missing/);

    const head = buildLog(5).lines.slice(1);
    result = failure(both(head));
    assert.equal(result.problem, 'deleted');
    assert.equal(result.seq, 1);
  });

  it('reports swapped lines and a moved line as reordered', () => {
    const swapped = buildLog(10).lines;
    [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!];
    let result = failure(both(swapped));
    assert.equal(result.problem, 'reordered');
    assert.equal(result.seq, 4);
    assert.equal(result.lineNumber, 4);
    assert.match(result.message, /event 5 is on line 4, before event 4 on line 5/);

    const moved = buildLog(10).lines;
    const [taken] = moved.splice(2, 1);
    moved.splice(7, 0, taken!);
    result = failure(both(moved));
    assert.equal(result.problem, 'reordered');
    assert.equal(result.seq, 3);
  });

  it('reports inserted lines: a forged event, a re-hashed forgery, a copy and a foreign line', () => {
    const { lines, events } = buildLog(10);
    const forgedBadHash = JSON.stringify({ ...events[5]!, details: { note: 'approved by nobody' } });

    const withBad = [...lines];
    withBad.splice(5, 0, forgedBadHash);
    let result = failure(both(withBad));
    assert.equal(result.problem, 'inserted');
    assert.equal(result.lineNumber, 6);
    assert.equal(result.seq, 6);

    // A forger who knows the scheme: seq 6, right prevHash, valid hash; the real event 6 follows.
    const rehashed = sealEvent({
      seq: 6,
      at: events[5]!.at,
      actor: { type: 'user', id: 'mallory' },
      action: 'review.approve',
      details: {},
      prevHash: events[4]!.hash,
    });
    const withForgery = [...lines];
    withForgery.splice(5, 0, rehashed.line);
    result = failure(both(withForgery));
    assert.equal(result.problem, 'inserted');
    assert.equal(result.lineNumber, 6);
    assert.equal(result.seq, 6);
    assert.equal(result.count, 5);

    const withCopy = [...lines];
    withCopy.splice(4, 0, lines[3]!);
    result = failure(both(withCopy));
    assert.equal(result.problem, 'inserted');
    assert.equal(result.lineNumber, 5);
    assert.match(result.message, /copy of event 4/);

    const withText = [...lines];
    withText.splice(2, 0, 'approved manually -- admin');
    result = failure(both(withText));
    assert.equal(result.problem, 'inserted');
    assert.equal(result.lineNumber, 3);
  });

  it('reports a torn last line, and a torn line of zeros', () => {
    const { lines } = buildLog(6);
    const torn = [...lines.slice(0, 5), lines[5]!.slice(0, 40)];
    let result = failure(both(torn));
    assert.equal(result.problem, 'torn');
    assert.equal(result.seq, 6);
    assert.equal(result.lineNumber, 6);
    assert.equal(result.count, 5);
    assert.match(result.message, /agent-lanes audit repair/);

    result = failure(both([...lines.slice(0, 5), '\0\0\0\0']));
    assert.equal(result.problem, 'torn');
  });

  it('reports a file that is not JSON Lines', () => {
    let result = failure(both(['just some notes', 'about the audit']));
    assert.equal(result.problem, 'notJson');
    assert.equal(result.lineNumber, 1);
    assert.match(result.message, /not an audit log in JSON Lines form/);

    const pretty = JSON.stringify(buildLog(2).events, null, 2).split('\n');
    result = failure(both(pretty));
    assert.equal(result.problem, 'notJson');

    result = failure(both([JSON.stringify(buildLog(2).events)]));
    assert.equal(result.problem, 'notJson');

    const { lines } = buildLog(5);
    result = failure(both([...lines.slice(0, 2), 'garbage', 'more garbage', ...lines.slice(2)]));
    assert.equal(result.problem, 'notJson');
    assert.equal(result.lineNumber, 3);
  });

  it('reports JSON lines that are not audit events, and a blank line inside the log', () => {
    let result = failure(both(['{"level":"info","msg":"started"}', '{"level":"info","msg":"done"}']));
    assert.equal(result.problem, 'invalid');
    assert.match(result.message, /seq/);

    const { lines } = buildLog(5);
    result = failure(both([...lines.slice(0, 2), '', ...lines.slice(2)]));
    assert.equal(result.problem, 'notJson');
    assert.equal(result.lineNumber, 3);
    assert.match(result.message, /blank/);
  });

  it('reports a log from another repository, and one that does not start with audit.created', () => {
    const { lines } = buildLog(5, OTHER_REPO);
    assert.equal(both(lines).ok, true, 'without an expected repository the log is intact');
    const result = failure(both(lines, { expectedRepoKey: REPO }));
    assert.equal(result.problem, 'foreignRepository');
    assert.equal(result.seq, 1);
    assert.match(result.message, /belongs to another repository \(bbbbbbbbbbbb…\)/);

    const first = sealEvent({
      seq: 1,
      at: '2026-11-21T09:00:00.000Z',
      actor: { type: 'user', id: 'x' },
      action: 'push',
      details: {},
      prevHash: GENESIS_HASH,
    });
    const noGenesis = failure(both([first.line]));
    assert.equal(noGenesis.problem, 'invalid');
    assert.match(noGenesis.message, /not "audit.created"/);
  });

  it('uses a checkpoint to detect events removed from the end and a rewritten chain', () => {
    const { lines, events } = buildLog(20);
    const checkpoint = { count: 20, headHash: events[19]!.hash, exportedAt: '2026-11-21T10:00:00.000Z' };
    assert.equal(both(lines, { checkpoint }).ok, true);
    assert.equal(both(buildLog(25).lines, { checkpoint }).ok, true, 'a log that grew after the checkpoint still verifies');

    const cut = failure(both(lines.slice(0, 17), { checkpoint }));
    assert.equal(cut.problem, 'truncated');
    assert.equal(cut.seq, 18);
    assert.match(cut.message, /events 18 to 20 were removed from the end/);

    // Without the checkpoint, removal from the end cannot be seen.
    assert.equal(both(lines.slice(0, 17)).ok, true);

    const rewritten = buildLog(20).lines.map((line) => line);
    const other = buildLog(20, REPO);
    // Same repository, regenerated chain with one different event.
    const forgedEvents = other.events.map((event) => ({ ...event }));
    forgedEvents[9] = { ...forgedEvents[9]!, details: { note: 'rewritten' } };
    let prevHash = GENESIS_HASH;
    forgedEvents.forEach((event, index) => {
      const { hash: _drop, ...rest } = event;
      const sealed = sealEvent({ ...rest, prevHash });
      prevHash = sealed.event.hash;
      rewritten[index] = sealed.line;
    });
    assert.equal(both(rewritten).ok, true, 'a fully rewritten chain is self-consistent');
    const result = failure(both(rewritten, { checkpoint }));
    assert.equal(result.problem, 'rewritten');
    assert.equal(result.seq, 20);
  });

  it('parses intact lines and refuses edited ones', () => {
    const { lines, events } = buildLog(3);
    assert.deepEqual(parseAuditLine(lines[1]!), events[1]);
    assert.equal(parseAuditLine(lines[1]!.replace('coder', 'mallory')), undefined);
    assert.equal(parseAuditLine('not json'), undefined);
  });

  it('lists the product actions once each', () => {
    assert.equal(new Set(AUDIT_ACTIONS).size, AUDIT_ACTIONS.length);
    for (const action of [
      'lane.transition',
      'agent.start',
      'agent.stop',
      'task.run',
      'policy.decision',
      'review.approve',
      'review.requestChanges',
      'review.reject',
      'push',
      'pr.create',
      'pr.update',
      'pr.ready',
      'policy.refresh',
      'killSwitch.change',
      'cleanup',
      'audit.repaired',
    ]) {
      assert.ok((AUDIT_ACTIONS as readonly string[]).includes(action), action);
    }
  });
});
