import type { Change } from '../change';
import { LaneError } from '../errors';

/** Every lane branch lives under this prefix; nothing else in the repository is ever deleted. */
const LANE_BRANCH_PREFIX = 'lanes/';

const CHANGE_ID = /^[0-9a-f]{8}$/;

export class DraftInputError extends LaneError {
  override name = 'DraftInputError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('draftInput', message, options);
  }
}

/** A short, branch-safe name from a task or title: "Add a greeting!" → "add-a-greeting". */
export function slugify(text: string, max = 40): string {
  const slug = text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  const cut = slug.slice(0, max).replace(/-+$/, '');
  return cut || 'draft';
}

/** True when the text holds a control character (no ref, path or trailer value needs one). */
export function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

export function assertChangeId(changeId: string): void {
  if (!CHANGE_ID.test(changeId)) throw new DraftInputError(`"${changeId}" is not a change id: a change id is 8 lower-case hex characters.`);
}

function assertSlug(slug: string): void {
  if (!/^[a-z0-9]+(?:-[a-z0-9]+)*$/.test(slug) || slug.length > 60) {
    throw new DraftInputError(
      `"${slug}" is not a usable slug: use lower-case letters, digits and single hyphens (make one with slugify()).`,
    );
  }
}

/** `lanes/<change id>-<slug>`: the change id keeps it unique, the slug makes it readable. */
export function laneBranchName(changeId: string, slug: string): string {
  assertChangeId(changeId);
  assertSlug(slug);
  return `${LANE_BRANCH_PREFIX}${changeId}-${slug}`;
}

/** The worktree's folder name inside the worktrees directory. */
export function laneFolderName(changeId: string, slug: string): string {
  assertChangeId(changeId);
  assertSlug(slug);
  return `${changeId}-${slug}`;
}

export function isLaneBranch(branch: string | undefined): boolean {
  return !!branch && branch.startsWith(LANE_BRANCH_PREFIX) && branch.length > LANE_BRANCH_PREFIX.length;
}

/** The change id a lane branch or folder name starts with, if any. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function changeIdFromLaneName(name: string): string | undefined {
  const bare = name.startsWith(LANE_BRANCH_PREFIX) ? name.slice(LANE_BRANCH_PREFIX.length) : name;
  const match = /^([0-9a-f]{8})(?:-|$)/.exec(bare);
  return match?.[1];
}

// ---------------------------------------------------------------------------
// Starting a draft in a repository that is not at rest

export type GitOperation = 'merge' | 'rebase' | 'cherryPick' | 'revert' | 'bisect';

export interface RepositoryState {
  /** The checked-out branch, or undefined when HEAD is detached. */
  branch?: string;
  /** The HEAD commit, or undefined in a repository without commits. */
  headSha?: string;
  /** Operations in progress, as their marker files in the git directory show. */
  operations: GitOperation[];
  uncommitted: { staged: number; unstaged: number; untracked: number; conflicted: number };
}

export interface DraftStartAssessment {
  /** False only when no commit can be chosen as the base. */
  allowed: boolean;
  /** Why it is refused, saying what to do. */
  refusal?: string;
  /** To show before starting (the draft still starts). */
  warnings: string[];
  /** A sentence for the agent's prompt, when the user's uncommitted work is left out. */
  promptNote?: string;
}

const OPERATION_WORDS: Record<GitOperation, string> = {
  merge: 'a merge',
  rebase: 'a rebase',
  cherryPick: 'a cherry-pick',
  revert: 'a revert',
  bisect: 'a bisect',
};

/**
 * Whether a draft may start, given the repository's state and whether the user
 * named a base explicitly. The draft always starts from a commit, so the user's
 * checkout is never in the way: uncommitted work is left out (and the prompt says
 * so), and an operation in progress is only warned about. The exception is a
 * rebase without an explicit base: its HEAD is a temporary, half-rebased commit,
 * so the user has to name the base.
 */
export function assessDraftStart(state: RepositoryState, explicitBase: boolean): DraftStartAssessment {
  const warnings: string[] = [];
  if (!state.headSha && !explicitBase) {
    return { allowed: false, refusal: 'This repository has no commits yet. Make a first commit, then start the draft.', warnings };
  }
  if (state.operations.includes('rebase') && !explicitBase) {
    return {
      allowed: false,
      refusal:
        'A rebase is in progress, so HEAD is a temporary commit. Finish or abort the rebase (git rebase --continue / --abort), or name a base branch, tag or commit for the draft.',
      warnings,
    };
  }
  for (const operation of state.operations) {
    warnings.push(
      `${OPERATION_WORDS[operation][0]!.toUpperCase()}${OPERATION_WORDS[operation].slice(1)} is in progress in your checkout. The draft starts from ${explicitBase ? 'the base you named' : 'the HEAD commit'}; the ${operation === 'bisect' ? 'bisect' : 'unfinished'} state is not included.`,
    );
  }
  const { staged, unstaged, untracked, conflicted } = state.uncommitted;
  const dirty = staged + unstaged + untracked + conflicted;
  let promptNote: string | undefined;
  if (dirty > 0) {
    const parts = [
      staged && `${staged} staged`,
      unstaged && `${unstaged} modified`,
      untracked && `${untracked} untracked`,
      conflicted && `${conflicted} conflicted`,
    ].filter(Boolean);
    warnings.push(`Your checkout has uncommitted changes (${parts.join(', ')}). The draft starts from a commit, so they are not included.`);
    promptNote = "The user's uncommitted changes are not included in this worktree; work from the committed state you see here.";
  }
  if (!state.branch && !explicitBase && state.headSha) warnings.push('HEAD is detached; the draft starts from the detached HEAD commit.');
  return { allowed: true, warnings, ...(promptNote ? { promptNote } : {}) };
}

// ---------------------------------------------------------------------------
// The prompt an agent receives

interface RequestedChange {
  body: string;
  path?: string;
  line?: number;
  author?: string;
}

export interface PromptInput {
  task: string;
  changeId: string;
  baseRef: string;
  baseSha: string;
  /** From assessDraftStart. */
  note?: string;
  /** Comments from a review that sent the change back. */
  requestedChanges?: readonly RequestedChange[];
}

/** The prompt file's text (Markdown): the task, what the agent may touch, how to report. */
export function composePrompt(input: PromptInput): string {
  const lines = ['# Task', '', input.task.trim(), ''];
  if (input.requestedChanges?.length) {
    lines.push('# Requested changes', '', 'A reviewer sent this change back. Address each point:', '');
    for (const request of input.requestedChanges) {
      const where = request.path ? ` (${request.path}${request.line !== undefined ? `:${request.line}` : ''})` : '';
      const who = request.author ? ` — ${request.author}` : '';
      const body = request.body.trim().replace(/\r?\n/g, '\n  ');
      lines.push(`- ${body}${where}${who}`);
    }
    lines.push('');
  }
  lines.push(
    '# Working agreement',
    '',
    `- You are in a scratch git worktree of change ${input.changeId}, based on ${input.baseRef} (${input.baseSha.slice(0, 12)}). Edit files only inside it.`,
    '- Do not commit, switch branches or touch any other checkout; Agent Lanes commits your work when you stop.',
  );
  if (input.note) lines.push(`- ${input.note}`);
  lines.push(
    '- When you finish, write a JSON report to the file named by the environment variable LANES_EVIDENCE_FILE:',
    '  {"summary": "what you changed and why", "assumptions": ["..."], "confidenceLimits": ["what you are unsure of or did not test"], "agentVersion": "..."}',
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// Reconciling change records with the worktrees and branches git knows

export interface ObservedWorktree {
  path: string;
  /** Short branch name (lanes/…), when a branch is checked out. */
  branch?: string;
  head?: string;
  /** git's lock reason; "initializing" marks a `git worktree add` that never finished. */
  locked?: string;
  /** git's reason when the worktree's folder is gone. */
  prunable?: string;
  folderExists: boolean;
  hasUncommittedWork: boolean;
}

export interface ReconcileInput {
  changes: readonly Change[];
  /** Worktrees on lane branches or inside the worktrees directory (never the main checkout). */
  worktrees: readonly ObservedWorktree[];
  /** Short names of every lanes/* branch. */
  laneBranches: readonly string[];
  /** Folders inside the worktrees directory that git does not know as worktrees. */
  strayFolders: readonly { path: string; hasFiles: boolean }[];
}

type ReconcileKind = 'worktreeMissing' | 'halfCreated' | 'orphanWorktree' | 'orphanBranch' | 'strayFolder';

/** What the user may do about a finding; each is carried out by infra's applyReconcileAction. */
export type ReconcileAction = 'restoreWorktree' | 'prune' | 'removeWorktree' | 'deleteBranch' | 'removeFolder';

export interface ReconcileFinding {
  kind: ReconcileKind;
  message: string;
  changeId?: string;
  path?: string;
  branch?: string;
  /** True when cleaning up would delete work nobody committed: never without asking. */
  hasUncommittedWork: boolean;
  actions: ReconcileAction[];
}

function samePath(a: string, b: string): boolean {
  const trim = (path: string) => path.replace(/[\\/]+$/, '');
  return trim(a) === trim(b);
}

/** Compares change records with what git reports; pure, so every case is unit-tested. */
export function reconcileDraftState(input: ReconcileInput): ReconcileFinding[] {
  const findings: ReconcileFinding[] = [];
  const open = input.changes.filter((change) => change.lane !== 'closed');
  const claimedWorktrees = new Set<ObservedWorktree>();
  const claimedBranches = new Set<string>();
  const branches = new Set(input.laneBranches);

  for (const change of open) {
    const worktree = input.worktrees.find(
      (candidate) => candidate.branch === change.branch || samePath(candidate.path, change.worktreePath),
    );
    if (worktree) claimedWorktrees.add(worktree);
    claimedBranches.add(change.branch);
    const branchExists = branches.has(change.branch);
    if (worktree?.folderExists && worktree.locked === 'initializing') {
      findings.push({
        kind: 'halfCreated',
        message: `The worktree of change ${change.id} at ${worktree.path} was left half-created (git still marks it "initializing"). Remove it and restore it from ${change.branch}, or discard the change.`,
        changeId: change.id,
        path: worktree.path,
        branch: change.branch,
        hasUncommittedWork: worktree.hasUncommittedWork,
        actions: ['removeWorktree'],
      });
      continue;
    }
    if (worktree?.folderExists) continue;
    const actions: ReconcileAction[] = branchExists ? ['restoreWorktree'] : [];
    if (worktree) actions.push('prune');
    const saved = branchExists
      ? `Its branch ${change.branch} still holds the committed work: restore the worktree from it, or discard the change.`
      : `Its branch ${change.branch} is gone too; only the change's record and evidence remain: discard the change.`;
    findings.push({
      kind: 'worktreeMissing',
      message: `The worktree of change ${change.id} ("${change.title}") is missing at ${change.worktreePath} (deleted by hand?). ${saved}`,
      changeId: change.id,
      path: change.worktreePath,
      branch: change.branch,
      hasUncommittedWork: false,
      actions,
    });
  }

  for (const worktree of input.worktrees) {
    if (claimedWorktrees.has(worktree)) continue;
    const changeId = changeIdFromLaneName(worktree.branch ?? '') ?? changeIdFromLaneName(worktree.path.split(/[\\/]/).pop() ?? '');
    const owner = changeId ? input.changes.find((change) => change.id === changeId) : undefined;
    const halfCreated = worktree.locked === 'initializing' || !worktree.folderExists;
    if (worktree.branch) claimedBranches.add(worktree.branch);
    if (halfCreated) {
      const why =
        worktree.locked === 'initializing'
          ? 'its creation never finished (git still marks it "initializing")'
          : 'git still lists it but its folder is gone';
      findings.push({
        kind: 'halfCreated',
        message: `A lane worktree at ${worktree.path} was left half-created: ${why}. Cleaning up removes it${worktree.branch && !owner ? ` and its branch ${worktree.branch}` : ''}.`,
        ...(owner ? { changeId: owner.id } : {}),
        path: worktree.path,
        ...(worktree.branch ? { branch: worktree.branch } : {}),
        hasUncommittedWork: worktree.folderExists && worktree.hasUncommittedWork,
        actions: worktree.folderExists ? ['removeWorktree'] : ['prune'],
      });
      continue;
    }
    const whose = owner
      ? `belongs to change ${owner.id}, which is ${owner.lane === 'closed' ? `closed (${owner.closedReason ?? 'closed'})` : 'not linked to it'}`
      : 'has no change record';
    findings.push({
      kind: 'orphanWorktree',
      message: `The lane worktree at ${worktree.path}${worktree.branch ? ` (branch ${worktree.branch})` : ''} ${whose}.${worktree.hasUncommittedWork ? ' It has uncommitted work: look at it before removing it.' : ''}`,
      ...(changeId ? { changeId } : {}),
      path: worktree.path,
      ...(worktree.branch ? { branch: worktree.branch } : {}),
      hasUncommittedWork: worktree.hasUncommittedWork,
      actions: ['removeWorktree'],
    });
  }

  for (const branch of input.laneBranches) {
    if (claimedBranches.has(branch)) continue;
    const changeId = changeIdFromLaneName(branch);
    const owner = changeId ? input.changes.find((change) => change.id === changeId) : undefined;
    findings.push({
      kind: 'orphanBranch',
      message: `The lane branch ${branch} has no worktree and ${owner ? `its change ${owner.id} is closed` : 'no change record'}; deleting it drops its commits.`,
      ...(changeId ? { changeId } : {}),
      branch,
      hasUncommittedWork: false,
      actions: ['deleteBranch'],
    });
  }

  for (const folder of input.strayFolders) {
    findings.push({
      kind: 'strayFolder',
      message: `The folder ${folder.path} in the worktrees directory is not a git worktree (left by an interrupted creation?).${folder.hasFiles ? ' It contains files.' : ''}`,
      path: folder.path,
      hasUncommittedWork: folder.hasFiles,
      actions: ['removeFolder'],
    });
  }
  return findings;
}
