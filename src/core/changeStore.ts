import { type Actor, type Change, ChangeFileSchema, type ChangeFile } from './change';
import { Emitter } from './events';
import { type LaneEvent, type TransitionResult, transition } from './lanes';
import { LaneError } from './errors';

/** Where a repository's change records live; the infra layer writes them to disk. */
export interface ChangePersistence {
  /** The stored file's contents, or undefined when nothing is stored yet. */
  read(): Promise<string | undefined>;
  /** Replaces the stored contents atomically. */
  write(contents: string): Promise<void>;
}

/** @internal Exported for its unit tests; the product calls it inside this module. */
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
  private loaded = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly changed = new Emitter<Change | undefined>();
  /** Fires with the changed change, or undefined after a reload. */
  readonly onDidChange = this.changed.event;

  constructor(private readonly persistence: ChangePersistence) {}

  async load(): Promise<void> {
    const text = await this.persistence.read();
    const next = new Map<string, Change>();
    if (text !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        throw new ChangeStoreError(
          `The change records are not valid JSON (${(error as Error).message}). They were left as they are; move the file aside to start afresh.`,
        );
      }
      const parsed = ChangeFileSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ChangeStoreError(
          `The change records do not match the expected format at ${issue?.path.join('.') || '(root)'}: ${issue?.message}. They were left as they are.`,
        );
      }
      for (const change of parsed.data.changes) next.set(change.id, change);
    }
    this.changes = next;
    this.loaded = true;
    this.changed.fire(undefined);
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
      if (this.changes.has(change.id)) throw new ChangeStoreError(`A change with id ${change.id} already exists.`);
      this.changes.set(change.id, change);
      await this.persist();
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
      this.changes.set(id, next);
      await this.persist();
      this.changed.fire(next);
      return next;
    });
  }

  /** Moves a change through the lane state machine; a refusal changes nothing. */
  transition(id: string, event: LaneEvent, actor: Actor, reason?: string): Promise<TransitionResult> {
    return this.mutate(async () => {
      const current = this.changes.get(id);
      if (!current) return { ok: false as const, reason: `There is no change ${id} in this repository.` };
      const result = transition(current, event, actor, reason ? { reason } : {});
      if (!result.ok) return result;
      this.changes.set(id, result.change);
      try {
        await this.persist();
      } catch (error) {
        this.changes.set(id, current);
        throw error;
      }
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

  private async persist(): Promise<void> {
    const file: ChangeFile = { version: 1, changes: this.all() };
    await this.persistence.write(`${JSON.stringify(file, null, 2)}\n`);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
