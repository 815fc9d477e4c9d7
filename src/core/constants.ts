import type { Actor } from './change';

/** The extension itself as the actor of what it does on its own (cleanup, invalidation, polling). */
export const EXTENSION_ACTOR: Actor = { type: 'extension', id: 'agent-lanes' };

/** A sandbox task's time limit when neither the task nor policy sets one. */
export const DEFAULT_TASK_TIMEOUT_SECONDS = 600;
