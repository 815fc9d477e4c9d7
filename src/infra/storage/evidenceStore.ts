import { join } from 'node:path';
import { type Evidence, EvidenceSchema } from '../../core/evidence';
import { readFileIfExists, writeFileAtomic } from './fileStore';
import type { RepoStorage } from './repoStorage';

export type EvidenceRead = { kind: 'missing' } | { kind: 'ok'; evidence: Evidence } | { kind: 'invalid'; message: string };

/**
 * A change's evidence record, one JSON file in the repository's storage (outside
 * every worktree, so an agent cannot edit its own evidence).
 */
export class EvidenceStore {
  constructor(private readonly storage: RepoStorage) {}

  fileFor(changeId: string): string {
    return join(this.storage.changeDir(changeId), 'evidence.json');
  }

  async read(changeId: string): Promise<EvidenceRead> {
    const file = this.fileFor(changeId);
    const text = await readFileIfExists(file);
    if (text === undefined) return { kind: 'missing' };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      return { kind: 'invalid', message: `The evidence file ${file} is not valid JSON (${(error as Error).message}).` };
    }
    const parsed = EvidenceSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return {
        kind: 'invalid',
        message: `The evidence file ${file} does not match the evidence format at ${issue?.path.join('.') || '(root)'}: ${issue?.message}.`,
      };
    }
    return { kind: 'ok', evidence: parsed.data };
  }

  async write(evidence: Evidence): Promise<void> {
    const checked = EvidenceSchema.parse(evidence);
    await writeFileAtomic(this.fileFor(checked.changeId), `${JSON.stringify(checked, null, 2)}\n`);
  }

  /** Reads, changes and writes back; starts from `initial` when there is no record yet. */
  async update(changeId: string, initial: () => Evidence, patch: (evidence: Evidence) => Evidence): Promise<Evidence> {
    const current = await this.read(changeId);
    if (current.kind === 'invalid') throw new Error(`${current.message} Move it aside to record new evidence.`);
    const next = patch(current.kind === 'ok' ? current.evidence : initial());
    await this.write(next);
    return next;
  }
}
