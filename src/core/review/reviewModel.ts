import { type Change, LANE_LABELS } from '../change';
import type { DecisionRecord } from '../decision';
import type { Evidence, EvidenceField, FlagKind } from '../evidence';
import { CHAT_AGENT_ID } from '../constants';
import { type IsolationEvidence, describeIsolation, CHAT_AGENT_ISOLATION } from '../draft/agentIsolation';
import { agentClaims, checkClaims } from '../sandbox/agentClaims';
import type { DecisionView, EvidenceFieldView, EvidenceView, FileEntry, FlagView, IsolationView, TaskView } from './reviewProtocol';

/** A file diff above either limit is listed but not rendered in the webview; VS Code's diff editor still opens it. */
export const MAX_RENDERED_LINES_PER_FILE = 5_000;
export const MAX_RENDERED_BYTES_PER_FILE = 1024 * 1024;
/** A single line longer than this is cut in the webview (minified code). */
export const MAX_RENDERED_LINE_LENGTH = 2_000;

/**
 * What reading a change's evidence file gave (the infra EvidenceStore's answer). The hash is null
 * while it is not computed yet (the review's first model, drawn before the evidence is hashed).
 */
export type EvidenceSource =
  { kind: 'missing' } | { kind: 'ok'; evidence: Evidence; hash: string | null } | { kind: 'invalid'; message: string };

const FLAG_LABELS: Readonly<Record<FlagKind, string>> = {
  newDependency: 'New dependency',
  sensitivePath: 'Security-sensitive path',
  symlinkEscape: 'Symlink leaves the worktree',
  gitPath: 'Writes under .git',
  pathTraversal: 'Path traversal',
  gitlink: 'Submodule (gitlink) change',
  oversizedFile: 'Oversized file',
  binaryFile: 'Binary file',
  secretLike: 'Secret-like content',
  secretInHistory: 'Secret in the commit history',
  unusualScope: 'Unusual scope',
  sandboxConfigEdited: 'Sandbox configuration edited',
  policyFileEdited: 'Policy file edited',
  agentInstructionsEdited: 'Agent instructions edited',
  executesLater: 'Runs code later',
  checkoutTouched: 'Your checkout was written',
  testsDoNotExercise: 'Tests do not exercise the change',
  unbackedClaim: 'Unbacked claim',
  unconfined: 'Agent ran unconfined',
};

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} bytes`;
}

/**
 * The file list from the diff analysis stored with the evidence when the
 * draft finished: what the review shows at once, before git has listed the
 * reviewed commits (the listing then takes its place; it decides what is
 * approved). Files are shown the way the listing shows them.
 */
export function filesFromAnalysis(files: NonNullable<Evidence['diff']>['files']): FileEntry[] {
  return files.map((file): FileEntry => {
    const common = {
      path: file.path,
      ...(file.oldPath !== undefined ? { oldPath: file.oldPath } : {}),
      status: file.status,
    };
    if (file.gitlink) return { ...common, additions: 0, deletions: 0, display: 'submodule', note: 'Submodule (gitlink)' };
    if (file.binary)
      return { ...common, additions: null, deletions: null, display: 'binary', note: 'Binary file: not shown here. Open it to compare.' };
    const lines = file.additions + file.deletions;
    const counts = { additions: file.additions, deletions: file.deletions };
    if (lines > MAX_RENDERED_LINES_PER_FILE || (file.sizeBytes ?? 0) > MAX_RENDERED_BYTES_PER_FILE)
      return {
        ...common,
        ...counts,
        display: 'tooLarge',
        note: `Too large to show here (${lines.toLocaleString('en-US')} changed lines${file.sizeBytes !== undefined ? `, ${formatBytes(file.sizeBytes)}` : ''}). Open it in VS Code's diff editor.`,
      };
    if (file.symlink) return { ...common, ...counts, display: 'text', note: 'Symbolic link: the diff shows its target.' };
    return { ...common, ...counts, display: 'text' };
  });
}

function flagLabel(kind: string): string {
  return (FLAG_LABELS as Record<string, string>)[kind] ?? kind;
}

export function decisionView(decision: DecisionRecord): DecisionView {
  return {
    action: decision.action,
    effect: decision.effect,
    explanation: decision.explanation,
    at: decision.at,
    rules: decision.matchedRules.map((rule) => ({
      policy: rule.policy,
      rule: rule.rule,
      effect: rule.effect,
      ...(rule.reason ? { reason: rule.reason } : {}),
    })),
  };
}

function taskView(task: Evidence['tasks'][number]): TaskView {
  return {
    id: task.id,
    command: task.command,
    required: task.required,
    outcome: task.outcome,
    exitCode: task.exitCode,
    durationMs: task.durationMs,
    ...(task.counts ? { counts: task.counts } : {}),
    networkMode: task.networkMode,
    isolation: task.isolation,
    ...(task.image ? { image: task.image } : {}),
    failsOnBase: task.failsOnBase,
    ...(task.message ? { message: task.message } : {}),
    logTruncated: task.logTruncated,
  };
}

/** Limits as the evidence names them (keys of the limits, or "network"), in the reviewer's words. */
const LIMIT_WORDS: Readonly<Record<string, string>> = {
  cpus: 'cpus',
  memoryMb: 'memory',
  pids: 'processes',
  diskMb: 'disk',
  timeoutSeconds: 'time limit',
  network: 'network',
};

function limitsInWords(limits: IsolationEvidence['limits']): string[] {
  const minutes = limits.timeoutSeconds / 60;
  return [
    limits.cpus !== undefined ? `${limits.cpus} CPU${limits.cpus === 1 ? '' : 's'}` : '',
    limits.memoryMb !== undefined ? `${limits.memoryMb.toLocaleString('en-US')} MB memory` : '',
    limits.pids !== undefined ? `${limits.pids.toLocaleString('en-US')} processes` : '',
    limits.diskMb !== undefined ? `${limits.diskMb.toLocaleString('en-US')} MB disk` : '',
    Number.isInteger(minutes) ? `${minutes} min` : `${limits.timeoutSeconds} s`,
  ].filter(Boolean);
}

/** The agent's transcript and claims about its tests, next to the sandbox's run. */
function claimsView(evidence: Evidence | undefined): EvidenceView['fields']['claims'] {
  const transcript = evidence?.transcript;
  const checks = evidence ? checkClaims(agentClaims({ transcript, report: evidence.agentReport }), evidence.tasks) : [];
  if (!transcript && !checks.length) return { state: 'missing', required: false };
  const counts = new Map<string, number>();
  for (const call of transcript?.toolCalls ?? []) counts.set(call.name, (counts.get(call.name) ?? 0) + 1);
  return {
    state: 'present',
    value: {
      ...(transcript?.model
        ? {
            model:
              transcript.modelFrom === 'command'
                ? `${transcript.model} (as its command asked; the transcript names none)`
                : transcript.model,
          }
        : {}),
      ...(transcript?.usage ? { usage: { inputTokens: transcript.usage.inputTokens, outputTokens: transcript.usage.outputTokens } } : {}),
      toolCalls: [...counts].map(([name, count]) => ({ name, count })),
      commands: (transcript?.commands ?? []).slice(0, 50),
      checks,
    },
  };
}

function isolationView(isolation: IsolationEvidence): IsolationView {
  return {
    state: isolation.backend === 'host' ? 'unconfined' : isolation.verified ? 'verified' : 'unverified',
    summary: describeIsolation(isolation),
    backend: isolation.backend,
    ...(isolation.sandbox ? { sandbox: isolation.sandbox } : {}),
    ...(isolation.image ? { image: isolation.image } : {}),
    ...(isolation.imageDigest ? { imageDigest: isolation.imageDigest } : {}),
    allow: isolation.network.allow,
    refused: isolation.network.refused,
    refusedTotal: isolation.network.refusedTotal,
    allowedTotal: isolation.network.allowedTotal,
    limits: limitsInWords(isolation.limits),
    notEnforced: isolation.notEnforced.map((limit) => LIMIT_WORDS[limit] ?? limit),
    ...(isolation.stoppedFor ? { stoppedFor: isolation.stoppedFor } : {}),
    probes: isolation.probes.map((probe) => ({ name: probe.name, outcome: probe.outcome, detail: probe.detail })),
    ...(isolation.canaryMs !== undefined ? { canaryMs: isolation.canaryMs } : {}),
  };
}

/** An agent in VS Code's chat has no process of ours, so no boundary: said so, not left blank. */
const CHAT_ISOLATION: IsolationView = {
  state: 'none',
  summary: CHAT_AGENT_ISOLATION,
  allow: [],
  refused: [],
  refusedTotal: 0,
  allowedTotal: 0,
  limits: [],
  notEnforced: [],
  probes: [],
};

/**
 * The evidence as the reviewer reads it: every field either present or
 * missing, and a missing field says whether policy requires it. A field counts
 * as present on the same terms policy uses (an empty list of assumptions is
 * missing; an empty list of flags, with a diff analysed, is "no flags").
 */
export function buildEvidenceView(
  source: EvidenceSource,
  requiredEvidence: readonly string[],
  reviewedDiffHash: string | null,
): EvidenceView {
  const required = new Set(requiredEvidence);
  const missing = <T>(name: EvidenceField): EvidenceFieldView<T> => ({ state: 'missing', required: required.has(name) });
  const present = <T>(value: T): EvidenceFieldView<T> => ({ state: 'present', value });
  const evidence = source.kind === 'ok' ? source.evidence : undefined;
  const report = evidence?.agentReport;
  const tasks = evidence?.tasks ?? [];
  const checkedOnBase = tasks.filter((task) => task.failsOnBase !== null);

  const fields: EvidenceView['fields'] = {
    summary: report?.summary?.trim() ? present(report.summary.trim()) : missing('summary'),
    filesTouched: evidence?.diff
      ? present({
          files: evidence.diff.totals.files,
          additions: evidence.diff.totals.additions,
          deletions: evidence.diff.totals.deletions,
          diffHash: evidence.diff.hash,
          matchesReviewedDiff: reviewedDiffHash === null ? null : evidence.diff.hash === reviewedDiffHash,
        })
      : missing('filesTouched'),
    tests: tasks.length ? present(tasks.map(taskView)) : missing('tests'),
    failsWithoutChange: checkedOnBase.length
      ? present({
          failOnBase: checkedOnBase.filter((task) => task.failsOnBase === true).length,
          passOnBase: checkedOnBase.filter((task) => task.failsOnBase === false).length,
          notRun: tasks.length - checkedOnBase.length,
          ...(evidence?.baseRun ? { baseSha: evidence.baseRun.baseSha } : {}),
          testFiles: evidence?.baseRun?.testFiles ?? [],
          removedTestFiles: evidence?.baseRun?.removedTestFiles ?? [],
          files: checkedOnBase.flatMap((task) => (task.baseFiles ?? []).map((file) => ({ task: task.id, ...file }))),
        })
      : missing('failsWithoutChange'),
    // Not a field policy can require: only real agent CLIs write a transcript.
    claims: claimsView(evidence),
    assumptions: report?.assumptions?.length ? present(report.assumptions) : missing('assumptions'),
    confidenceLimits: report?.confidenceLimits?.length ? present(report.confidenceLimits) : missing('confidenceLimits'),
    prompt: evidence?.prompt.ref
      ? present({ ref: evidence.prompt.ref, redacted: evidence.prompt.redacted, redactions: evidence.prompt.redaction?.total ?? 0 })
      : missing('prompt'),
    agent: evidence?.agent.id
      ? present({
          id: evidence.agent.id,
          ...((evidence.agent.version ?? report?.agentVersion) ? { version: (evidence.agent.version ?? report?.agentVersion)! } : {}),
        })
      : missing('agent'),
    // Not a field policy can require. Evidence from before agent boundaries has none: "not recorded".
    isolation: evidence?.isolation
      ? present(isolationView(evidence.isolation))
      : evidence?.agent.id === CHAT_AGENT_ID
        ? present(CHAT_ISOLATION)
        : { state: 'missing', required: false },
    baseAndHead:
      evidence?.base.sha && evidence.headSha
        ? present({ baseRef: evidence.base.ref, baseSha: evidence.base.sha, headSha: evidence.headSha })
        : missing('baseAndHead'),
    flags: evidence?.diff
      ? present(
          evidence.flags.map((flag): FlagView => ({
            kind: flag.kind,
            label: flagLabel(flag.kind),
            ...(flag.path ? { path: flag.path } : {}),
            detail: flag.detail,
          })),
        )
      : missing('flags'),
    policyDecisions: evidence?.decisions.length ? present(evidence.decisions.map(decisionView)) : missing('policyDecisions'),
  };

  if (source.kind === 'ok') return { state: 'ok', hash: source.hash, fields };
  if (source.kind === 'invalid')
    return {
      state: 'invalid',
      message: `${source.message} Nothing can be approved until the evidence is recorded again (run the sandbox tasks again).`,
      hash: null,
      fields,
    };
  return {
    state: 'missing',
    message: 'No evidence has been recorded for this change yet: run its sandbox tasks to record it.',
    hash: null,
    fields,
  };
}

/** Everything that decides whether an approval may be given now. */
export interface ApprovalFacts {
  change: Pick<Change, 'id' | 'lane' | 'createdBy' | 'approval'>;
  gate: { ready: boolean; reasons: readonly string[] };
  evidence: { state: EvidenceView['state']; message?: string };
  diff: { state: 'ok' | 'error'; message?: string };
  /** Who would approve; undefined when it could not be found out. */
  approver: string | undefined;
  /** Still finding out who the reviewer is: identity checks wait for the answer (approving asks again anyway). */
  approverPending?: boolean;
  forbidSelfApproval: boolean;
  worktreeExists: boolean;
  /** The hash of the diff on screen. */
  reviewedDiffHash?: string;
  /** The diff the evidence was recorded for, when it says. */
  evidenceDiffHash?: string;
  /** The worktree's diff hash on disk now; undefined when not (yet) known. */
  worktreeDiffHash?: string;
}

/** Why an approval must be refused now, in words that say what to do; undefined when it may be given. */
export function approvalRefusal(facts: ApprovalFacts): string | undefined {
  const { change } = facts;
  if (change.lane !== 'review')
    return `Change ${change.id} is not in Review (it is ${change.lane === 'closed' ? 'closed' : `in ${LANE_LABELS[change.lane]}`}); only a change in Review can be approved.`;
  if (change.approval && !change.approval.invalidated) return `Change ${change.id} is already approved by ${change.approval.by}.`;
  if (!facts.worktreeExists)
    return `The worktree of change ${change.id} no longer exists, so what would be approved cannot be checked. Restore it with "Agent Lanes: Reconcile", or reject the change.`;
  if (facts.diff.state !== 'ok')
    return `The diff could not be read (${facts.diff.message ?? 'unknown error'}); fix the repository and refresh the review.`;
  if (facts.evidence.state === 'missing') return 'There is no evidence to approve: run the sandbox tasks to record it, then review again.';
  if (facts.evidence.state === 'invalid')
    return `The evidence file fails validation, so it cannot be approved: ${facts.evidence.message ?? ''}`.trim();
  if (facts.evidenceDiffHash !== undefined && facts.reviewedDiffHash !== undefined && facts.evidenceDiffHash !== facts.reviewedDiffHash) {
    return 'The evidence was recorded for another diff than the one shown (the draft changed after its sandbox run): run the sandbox tasks again, then review.';
  }
  if (facts.worktreeDiffHash !== undefined && facts.reviewedDiffHash !== undefined && facts.worktreeDiffHash !== facts.reviewedDiffHash) {
    return 'The worktree has changes that are not in the reviewed commits. Commit them (or discard them) so the review shows them, or request changes.';
  }
  if (!facts.approver && !facts.approverPending)
    return "Could not tell who you are: sign in to GitHub in VS Code (Accounts menu) or set git's user.email, then approve again.";
  if (facts.approver && facts.forbidSelfApproval && change.createdBy !== undefined && sameIdentity(facts.approver, change.createdBy)) {
    return `Policy forbids self-approval: ${facts.approver} started this change. Ask another reviewer to approve it.`;
  }
  if (!facts.gate.ready) {
    const reasons = facts.gate.reasons.length ? facts.gate.reasons.join('; ') : 'the gate is not satisfied';
    return `The Review → Pull request gate blocks it: ${reasons}.`;
  }
  return undefined;
}

/** GitHub logins and e-mail addresses compare without case. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function sameIdentity(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}

/** What the Lanes tree shows for a change in Review, at a glance. */
export interface ReviewGlance {
  text: string;
  state: 'approved' | 'invalidated' | 'ready' | 'blocked' | 'unknown';
  /** When blocked: the gate's first reason, in full. */
  reason?: string;
}

/** One line for the Lanes tree: the review's state at a glance. */
export function reviewGlance(
  change: Pick<Change, 'lane' | 'approval'>,
  gate?: { ready: boolean; reasons: readonly string[] },
): ReviewGlance {
  if (change.approval?.invalidated) return { text: 'approval invalidated', state: 'invalidated' };
  if (change.approval) return { text: `approved by ${change.approval.by}`, state: 'approved' };
  if (!gate) return { text: 'awaiting review', state: 'unknown' };
  if (gate.ready) return { text: 'ready to approve', state: 'ready' };
  const reason = gate.reasons[0] ?? 'see the review';
  return { text: `blocked: ${reason}`, state: 'blocked', reason };
}
