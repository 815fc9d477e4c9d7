import { stat } from 'node:fs/promises';
import * as vscode from 'vscode';
import type { Evidence } from '../../core/evidence';
import type { Logger } from '../../core/logger';
import { buildEvidenceView } from '../../core/review/reviewModel';
import { git } from '../../infra/git/gitProcess';
import { worktreeDiffHash } from '../../infra/review/reviewDiff';
import type { RepositoryRegistry } from '../repositories';
import type { GateVerdict, ReviewDeps } from './deps';
import { ReviewRefusal } from './panel';

/** Evidence the built-in review checks require until the policy engine decides. */
const BUILTIN_REQUIRED_EVIDENCE = ['filesTouched', 'tests', 'prompt', 'agent', 'baseAndHead'];
const BLOCKING_FLAGS = new Set(['secretLike', 'symlinkEscape', 'pathTraversal', 'gitPath', 'checkoutTouched']);
const SIGN_IN_TIMEOUT_MS = 1_500;
/** Who the reviewer is changes rarely; asking the sign-in provider each time can be slow. */
const IDENTITY_CACHE_MS = 60_000;

/**
 * The built-in gate the review uses until the lead wires the policy engine's
 * `gate.reviewToPullRequest`: required evidence present, required tasks
 * passed, no blocking flags.
 */
export function builtinReviewGate(evidence: Evidence | undefined): GateVerdict {
  const base = { decisions: [], requiredEvidence: BUILTIN_REQUIRED_EVIDENCE, policyLabel: 'built-in review checks' };
  if (!evidence) return { ...base, ready: false, reasons: ['no evidence has been recorded; run the sandbox tasks'] };
  const view = buildEvidenceView({ kind: 'ok', evidence, hash: '0'.repeat(64) }, BUILTIN_REQUIRED_EVIDENCE, null);
  const reasons: string[] = [];
  for (const name of BUILTIN_REQUIRED_EVIDENCE) {
    if (view.fields[name as keyof typeof view.fields].state === 'missing') reasons.push(`required evidence is missing: ${name}`);
  }
  for (const task of evidence.tasks) {
    if (task.required && task.outcome !== 'passed') reasons.push(`the required task ${task.id} did not pass (${task.outcome})`);
  }
  for (const flag of evidence.flags) {
    if (BLOCKING_FLAGS.has(flag.kind)) reasons.push(`${flag.detail}${flag.path ? ` (${flag.path})` : ''}`);
  }
  return { ...base, ready: reasons.length === 0, reasons };
}

/** The GitHub account VS Code is signed in to, without prompting; undefined when none (or no GitHub provider). */
async function githubAccount(logger: Logger): Promise<string | undefined> {
  try {
    const session = await Promise.race([
      vscode.authentication.getSession('github', ['read:user'], { silent: true }),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), SIGN_IN_TIMEOUT_MS)),
    ]);
    return session?.account.label;
  } catch (error) {
    logger.debug(`No GitHub session: ${(error as Error).message}`);
    return undefined;
  }
}

/**
 * A complete ReviewDeps from what exists today: the built-in gate, git for
 * identity and hashes, the store for lane moves, the log for audit. The lead
 * replaces evaluateGate, forbidSelfApproval, reject and audit with the policy
 * engine, the worktree service and the audit log.
 */
export function createDefaultReviewDeps(logger: Logger, registry: RepositoryRegistry): ReviewDeps {
  const identities = new Map<string, { at: number; value: Promise<string | undefined> }>();
  const lookUp = async (repoRoot: string): Promise<string | undefined> => {
    const account = await githubAccount(logger);
    if (account) return account;
    const email = await git(repoRoot, ['config', '--get', 'user.email'], { okExitCodes: [1] });
    return email.stdout.trim() || undefined;
  };
  return {
    logger,
    registry,
    evaluateGate: async (_repo, _change, evidence) => builtinReviewGate(evidence),
    forbidSelfApproval: () => true,
    currentDiffHash: (_repo, change) => worktreeDiffHash(change.worktreePath, change.baseSha),
    whoAmI: (repo) => {
      const cached = identities.get(repo.root);
      if (cached && Date.now() - cached.at < IDENTITY_CACHE_MS) return cached.value;
      const value = lookUp(repo.root);
      identities.set(repo.root, { at: Date.now(), value });
      value.catch(() => identities.delete(repo.root));
      return value;
    },
    requestChanges: async (repo, change, comment, actor) => {
      const result = await repo.store.transition(change.id, 'requestChanges', actor, comment);
      if (!result.ok) throw new ReviewRefusal(result.reason);
    },
    reject: async (repo, change, comment, actor) => {
      const result = await repo.store.transition(change.id, 'reject', actor, comment);
      if (!result.ok) throw new ReviewRefusal(result.reason);
      const there = await stat(change.worktreePath).then(
        () => true,
        () => false,
      );
      if (!there) return;
      try {
        await git(repo.root, ['worktree', 'remove', '--force', '--force', change.worktreePath]);
      } catch (error) {
        logger.error(`Change ${change.id} was rejected but its worktree could not be removed`, error);
        void vscode.window.showWarningMessage(
          `Change ${change.id} was rejected, but its worktree ${change.worktreePath} could not be removed: run "git worktree remove --force ${change.worktreePath}".`,
        );
      }
    },
    audit: async (_repo, action, changeId, details, actor) => {
      logger.info(`audit ${action} ${changeId} by ${actor.id}: ${JSON.stringify(details)}`);
    },
  };
}
