import { type Actor, CHANGE_ID_PATTERN, type Change, ChangeFileSchema } from './change';
import { Emitter } from './events';
import { type LaneEvent, type TransitionResult, transition } from './lanes';
import { LaneError } from './errors';

/** One change's record as it lies on disk: the id its place names, where it is (for messages), and its text or why it could not be read. */
export type StoredChangeRecord = { readonly id: string; readonly source: string } & (
  { readonly text: string; readonly error?: undefined } | { readonly text?: undefined; readonly error: string }
);

/** A stored record that could not be read: the other changes load without it. */
export interface UnreadableChangeRecord {
  readonly id: string;
  readonly source: string;
  readonly message: string;
}

/**
 * Where a repository's change records live, one record per change; the infra
 * layer keeps them on disk. Writing one change never rewrites the others.
 */
export interface ChangePersistence {
  /** Every stored record (an older layout is migrated first). */
  readAll(): Promise<StoredChangeRecord[]>;
  /** Replaces one change's record atomically: a crash leaves the old record or the new one, never half of one. */
  write(id: string, contents: string): Promise<void>;
}

const ChangeRecordSchema = ChangeFileSchema.shape.changes.element;

/** Whether `id` is a change id (8 hex characters): the only ids that name a record's place on disk. */
export function isChangeId(id: unknown): id is string {
  return typeof id === 'string' && CHANGE_ID_PATTERN.test(id);
}

/** The change store's refusals and unreadable records. */
export class ChangeStoreError extends LaneError {
  override name = 'ChangeStoreError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('changeStore', message, options);
  }
}

/**
 * The changes of one repository, persisted after every mutation. Mutations are
 * serialised so two commands never interleave a read-modify-write.
 */
export class ChangeStore {
  private changes = new Map<string, Change>();
  private unreadableRecords: UnreadableChangeRecord[] = [];
  private loaded = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly changed = new Emitter<Change | undefined>();
  /** Fires with the changed change, or undefined after a reload. */
  readonly onDidChange = this.changed.event;

  constructor(private readonly persistence: ChangePersistence) {}

  /**
   * Reads every record. A record that is not valid JSON or not a change is
   * left as it is and listed in `unreadable` (with its file and what is
   * wrong); the other changes load.
   */
  async load(): Promise<void> {
    const records = await this.persistence.readAll();
    const next = new Map<string, Change>();
    const unreadable: UnreadableChangeRecord[] = [];
    for (const record of records) {
      const problem = (message: string) => unreadable.push({ id: record.id, source: record.source, message });
      if (record.text === undefined) {
        problem(
          `The change record ${record.source} could not be read (${record.error}). It was left as it is; fix it or move its folder aside.`,
        );
        continue;
      }
      let json: unknown;
      try {
        json = JSON.parse(record.text);
      } catch (error) {
        problem(
          `The change record ${record.source} is not valid JSON (${(error as Error).message}). It was left as it is; fix it or move its folder aside.`,
        );
        continue;
      }
      const parsed = ChangeRecordSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        problem(
          `The change record ${record.source} does not match the expected format at ${issue?.path.join('.') || '(root)'}: ${issue?.message}. It was left as it is; fix it or move its folder aside.`,
        );
        continue;
      }
      if (parsed.data.id !== record.id) {
        problem(
          `The change record ${record.source} holds change ${parsed.data.id}, but lies in the place of change ${record.id}. It was left as it is; fix its id or move it back to its own folder.`,
        );
        continue;
      }
      next.set(record.id, parsed.data);
    }
    this.changes = next;
    this.unreadableRecords = unreadable;
    this.loaded = true;
    this.changed.fire(undefined);
  }

  /** The records the last load could not read, each with its file and what is wrong. */
  get unreadable(): readonly UnreadableChangeRecord[] {
    return this.unreadableRecords;
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  all(): Change[] {
    return [...this.changes.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  get(id: string): Change | undefined {
    return this.changes.get(id);
  }

  /** Adds a new change; its id must be new. */
  add(change: Change): Promise<Change> {
    return this.mutate(async () => {
      if (!isChangeId(change.id)) throw new ChangeStoreError(`A change id is 8 hex characters, not ${JSON.stringify(change.id)}.`);
      if (this.changes.has(change.id)) throw new ChangeStoreError(`A change with id ${change.id} already exists.`);
      const unreadable = this.unreadableRecords.find((record) => record.id === change.id);
      if (unreadable) throw new ChangeStoreError(`A change with id ${change.id} already exists but cannot be read: ${unreadable.message}`);
      this.changes.set(change.id, change);
      try {
        await this.persist(change);
      } catch (error) {
        this.changes.delete(change.id);
        throw error;
      }
      this.changed.fire(change);
      return change;
    });
  }

  /** Replaces fields of a change (not its lane: lanes move only through transition). */
  update(id: string, patch: (change: Change) => Change): Promise<Change> {
    return this.mutate(async () => {
      const current = this.require(id);
      const next = patch(structuredClone(current));
      if (next.id !== id) throw new ChangeStoreError('A change keeps its id.');
      if (next.lane !== current.lane) throw new ChangeStoreError('A lane changes only through a transition.');
      next.updatedAt = new Date().toISOString();
      await this.persist(next);
      this.changes.set(id, next);
      this.changed.fire(next);
      return next;
    });
  }

  /** Moves a change through the lane state machine; a refusal changes nothing. */
  /** Moves a change; `alsoSet` changes the moved record in the same write (nothing seen, or lost, half done). */
  transition(id: string, event: LaneEvent, actor: Actor, reason?: string, alsoSet?: (moved: Change) => Change): Promise<TransitionResult> {
    return this.mutate(async () => {
      const current = this.changes.get(id);
      if (!current) return { ok: false as const, reason: `There is no change ${id} in this repository.` };
      const moved = transition(current, event, actor, reason ? { reason } : {});
      if (!moved.ok) return moved;
      const result = alsoSet ? { ...moved, change: alsoSet(moved.change) } : moved;
      await this.persist(result.change);
      this.changes.set(id, result.change);
      this.changed.fire(result.change);
      return result;
    });
  }

  private require(id: string): Change {
    const change = this.changes.get(id);
    if (!change) throw new ChangeStoreError(`There is no change ${id} in this repository.`);
    return change;
  }

  private mutate<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      if (!this.loaded) await this.load();
      return work();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Writes this one change's record; the other records stay as they are. */
  private async persist(change: Change): Promise<void> {
    await this.persistence.write(change.id, `${JSON.stringify(change, null, 2)}\n`);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
