import * as assert from 'node:assert/strict';
import type { HostMessage } from '../../../src/core/review/reviewProtocol';
import { seedChange } from './seed';
import { type TestReview, openAndRender, send, testReview } from './helpers';

/** A small deterministic generator, so a failure can be replayed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TYPES = [
  'ready',
  'rendered',
  'webviewError',
  'loadFiles',
  'approve',
  'requestChanges',
  'reject',
  'openFileDiff',
  'openChanges',
  'refresh',
  'response',
  'model',
  'delete',
  'approveAll',
  '__proto__',
  'constructor',
  '',
  'APPROVE',
];

function fuzzMessages(count: number, changeId: string, hashes: { diff: string; evidence: string }, seed: number): unknown[] {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const randomString = (max = 40) =>
    Array.from({ length: Math.floor(random() * max) }, () => String.fromCharCode(Math.floor(random() * 0xffff))).join('');
  const randomValue = (depth: number): unknown => {
    const kind = Math.floor(random() * (depth > 3 ? 7 : 10));
    switch (kind) {
      case 0:
        return null;
      case 1:
        return undefined;
      case 2:
        return random() < 0.5;
      case 3:
        return pick([0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, Number.MIN_VALUE, 2 ** 31 + 1]);
      case 4:
        return randomString();
      case 5:
        return pick([changeId, 'deadbeef', 'C0FFEE01', changeId.toUpperCase(), `${changeId} `, '../../etc', hashes.diff]);
      case 6:
        return BigInt(Math.floor(random() * 1e9));
      case 7:
        return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(depth + 1));
      default: {
        const object: Record<string, unknown> = {};
        for (let i = Math.floor(random() * 6); i > 0; i--)
          object[
            pick([
              'type',
              'id',
              'changeId',
              'paths',
              'path',
              'comment',
              'confirmed',
              'diffHash',
              'evidenceHash',
              'files',
              'ms',
              randomString(8),
            ])
          ] = randomValue(depth + 1);
        return object;
      }
    }
  };
  // Messages that parse, except for one detail, or that parse but name another change.
  const nearMisses = (): unknown => {
    const other = pick(['deadbeef', '00000000', 'ffffffff', 'c0ffee01']);
    const valid: Record<string, unknown>[] = [
      { type: 'approve', id: 1, changeId: other, diffHash: hashes.diff, evidenceHash: hashes.evidence },
      { type: 'reject', id: 2, changeId: other, confirmed: true },
      { type: 'requestChanges', id: 3, changeId: other, comment: 'do it again' },
      { type: 'loadFiles', id: 4, changeId: other, paths: ['README.md'] },
      { type: 'openChanges', id: 5, changeId: other },
      { type: 'ready', changeId: other },
    ];
    const broken: Record<string, unknown>[] = [
      { type: 'approve', id: 1, changeId, diffHash: hashes.diff },
      { type: 'approve', id: 1, changeId, diffHash: hashes.diff.toUpperCase(), evidenceHash: hashes.evidence },
      { type: 'approve', id: -1, changeId, diffHash: hashes.diff, evidenceHash: hashes.evidence },
      { type: 'approve', id: 1.5, changeId, diffHash: hashes.diff, evidenceHash: hashes.evidence },
      { type: 'approve', id: '1', changeId, diffHash: hashes.diff, evidenceHash: hashes.evidence },
      { type: 'approve', id: 1, changeId, diffHash: hashes.diff, evidenceHash: hashes.evidence, by: 'mallory' },
      { type: 'reject', id: 2, changeId, confirmed: 'true' },
      { type: 'reject', id: 2, changeId },
      { type: 'requestChanges', id: 3, changeId, comment: '' },
      { type: 'requestChanges', id: 3, changeId, comment: ' \n\t ' },
      { type: 'requestChanges', id: 3, changeId, comment: 'x'.repeat(10_001) },
      { type: 'loadFiles', id: 4, changeId, paths: [] },
      { type: 'loadFiles', id: 4, changeId, paths: Array.from({ length: 51 }, (_, i) => `f${i}`) },
      { type: 'loadFiles', id: 4, changeId, paths: ['x'.repeat(5_000)] },
      { type: 'loadFiles', id: 4, changeId, paths: 'README.md' },
      { type: 'openFileDiff', id: 5, changeId, path: '' },
      { type: 'rendered', changeId, files: -1, ms: 3 },
      { type: 'ready', changeId, extra: true },
      { type: 'webviewError', changeId, message: 'x'.repeat(5_001) },
      JSON.parse(`{"__proto__": {"polluted": true}, "type": "approve", "id": 1, "changeId": "${changeId}"}`) as Record<string, unknown>,
      { constructor: { prototype: { polluted: true } }, type: 'reject', id: 1, changeId, confirmed: true, extra: 1 },
    ];
    return random() < 0.4 ? pick(valid) : pick(broken);
  };
  const messages: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    if (r < 0.45) messages.push(randomValue(0));
    else if (r < 0.85) messages.push(nearMisses());
    // Any type, with a change id that is never exactly this panel's.
    else
      messages.push({
        ...(randomValue(1) as object),
        type: pick(TYPES),
        changeId: pick([changeId.toUpperCase(), 'deadbeef', 42, null, `${changeId}0`]),
      });
  }
  return messages;
}

describe('review message fuzzing', () => {
  let review: TestReview;

  before(async () => {
    review = await testReview();
  });

  after(() => review?.dispose());

  it('ignores thousands of random, malformed and foreign messages: no crash, nothing done, every one logged or counted', async function () {
    this.timeout(120_000);
    const { change, listing } = await seedChange(review.repo, { id: 'f0220001' });
    const panel = await openAndRender(review, change.id);
    const before = structuredClone(review.repo.store.get(change.id));
    const handled = panel.counters.handled;
    const posted: HostMessage[] = [];
    const subscription = panel.onDidPost((message) => posted.push(message));
    const count = 5_000;
    const messages = fuzzMessages(count, change.id, { diff: listing.hash, evidence: panel.currentModel!.evidence.hash! }, 20261121);
    messages.push(
      ...[
        'x'.repeat(2_000_000),
        Array.from({ length: 200_000 }, (_, i) => i),
        { type: 'loadFiles', id: 9, changeId: change.id, paths: Array.from({ length: 100_000 }, () => 'README.md') },
      ],
    );
    for (const message of messages) await panel.handleMessage(message);
    subscription.dispose();

    assert.equal(panel.counters.ignored, messages.length, 'every message was ignored');
    assert.equal(panel.counters.handled, handled, 'none was handled');
    assert.deepEqual(
      posted.filter((m) => m.type === 'response'),
      [],
      'no request was answered',
    );
    assert.deepEqual(review.repo.store.get(change.id), before, 'the change is exactly as it was');
    assert.deepEqual(await review.audits(change.id), [], 'nothing was audited');
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');
    assert.ok(
      review.logger.lines.some((line) => /ignored an invalid message/.test(line)),
      'invalid messages are logged',
    );
    assert.ok(
      review.logger.lines.some(
        (line) => /naming change deadbeef, not this panel's/.test(line) || /naming change [0-9a-f]{8}, not this panel's/.test(line),
      ),
      'foreign messages are logged',
    );
    assert.ok(review.logger.lines.filter((line) => /ignored/.test(line)).length < 200, 'the log is not flooded');

    // The panel still answers its own webview.
    const response = await send(panel, { type: 'loadFiles', id: 10, changeId: change.id, paths: ['README.md'] });
    assert.equal(response?.ok, true);
    panel.dispose();
  });
});
