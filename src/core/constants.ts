import type { Actor } from './change';

/** The extension itself as the actor of what it does on its own (cleanup, invalidation, polling). */
export const EXTENSION_ACTOR: Actor = { type: 'extension', id: 'agent-lanes' };

/** The agent id of a draft written by an agent in VS Code's chat (through the lane's tools, no process of ours). */
export const CHAT_AGENT_ID = 'vscode-chat';
/** The agent id of a revert draft: the lanes write it (git revert of a merged commit), no agent does. */
export const REVERT_AGENT_ID = 'agent-lanes-revert';

/** A sandbox task's time limit when neither the task nor policy sets one. */
export const DEFAULT_TASK_TIMEOUT_SECONDS = 600;
