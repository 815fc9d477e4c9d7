import { type Change, LANE_LABELS } from '../change';
import type { DecisionRecord, MatchedRule } from '../decision';
import type { FlagKind } from '../evidence';
import { ACTION_LABELS, type PolicyAction } from '../policy/evaluate';
import { FLAG_CONDITION } from '../policy/schema';
import { pullRequestGlance } from '../pullRequest/glance';
import { releaseGlance } from '../changeGlance';
import {
  type AttentionItem,
  EVIDENCE_SECTION_ORDER,
  EVIDENCE_SECTION_TITLES,
  type EvidenceView,
  type PageTarget,
  type PullRequestView,
  type ReviewModel,
} from './reviewProtocol';

/** Everything the verdict at the top of a review is made from. */
export interface VerdictInput {
  change: Pick<Change, 'id' | 'lane' | 'closedReason' | 'approval' | 'lastDecision' | 'pullRequest' | 'release'>;
  /** The Review → Pull request gate's answer, asked as if a reviewer approved. */
  gate: { ready: boolean; reasons: readonly string[]; decisions: readonly DecisionRecord[] };
  /** Why an approval would be refused now (approvalRefusal); undefined when it may be given. */
  refusal: string | undefined;
  evidence: Pick<EvidenceView, 'fields'>;
  /** The paths of the diff on screen, in its order (file targets are indexes into it). */
  files: readonly string[];
  /** Problems with what is shown: a vanished worktree, evidence for another diff. */
  warnings: readonly string[];
}

type Verdict = ReviewModel['verdict'];
type Flag = { kind: string; label: string; path?: string; detail: string };

const REVIEW_GATE_LABEL = ACTION_LABELS['gate.reviewToPullRequest'];

const more = (count: number): string => (count > 1 ? ` (and ${count - 1} more)` : '');

function validApproval(change: Pick<Change, 'approval'>): NonNullable<Change['approval']> | undefined {
  return change.approval && !change.approval.invalidated ? change.approval : undefined;
}

/** Rules about approvals themselves ("needs 2 approvals, has 1") are not given by one reviewer's approval. */
function isApprovalRule(rule: MatchedRule): boolean {
  return rule.rule.startsWith('lanes.approvals.');
}

function ruleLabel(rule: MatchedRule): string {
  return `${rule.rule} (${rule.policy})`;
}

function flagText(flag: Flag): string {
  return `${flag.label}${flag.path ? ` ${flag.path}` : ''}: ${flag.detail}`;
}

/** Where a rule that is not about a flag is best seen in the page. */
function ruleTarget(rule: MatchedRule, input: VerdictInput): { target: PageTarget; targetLabel: string } {
  const path = rule.paths?.find((candidate) => input.files.includes(candidate));
  if (path !== undefined) return { target: { tab: 'files', file: input.files.indexOf(path) }, targetLabel: path };
  const evidence = (key: (typeof EVIDENCE_SECTION_ORDER)[number]) => ({
    target: { tab: 'evidence' as const, id: `ev-${key}` },
    targetLabel: EVIDENCE_SECTION_TITLES[key],
  });
  if (rule.rule.startsWith('lanes.sandbox.')) return evidence('tests');
  if (rule.rule === 'lanes.allowedAgents') return evidence('agent');
  if (rule.rule === 'lanes.evidence.required') {
    const fields = input.evidence.fields;
    const missing = EVIDENCE_SECTION_ORDER.find((key) => {
      const field = fields[key];
      return field.state === 'missing' && field.required;
    });
    return evidence(missing ?? 'summary');
  }
  if (rule.rule.startsWith('blastRadius.') || rule.rule.startsWith('pathRules') || rule.paths?.length)
    return { target: { tab: 'files' }, targetLabel: 'Files changed' };
  return evidence('policyDecisions');
}

/**
 * The items of one decision: one per flag a rule stops (linking to the flag),
 * one per other rule (linking to its file or evidence). `covered` collects the
 * flags a rule spoke for.
 */
function decisionItems(
  decision: DecisionRecord,
  input: VerdictInput,
  flags: readonly Flag[],
  covered: Set<number>,
  step: string | undefined,
): AttentionItem[] {
  const approval = input.change.lane === 'review' || input.change.lane === 'pullRequest' ? validApproval(input.change) : undefined;
  const items: AttentionItem[] = [];
  for (const rule of decision.matchedRules) {
    if (rule.effect === 'allow') continue;
    const reason = rule.reason ?? rule.rule;
    // The item says what the rule is about; its kind ("Blocks", "Needs approval", "Approved") is said beside it,
    // and who approved is said once, in the headline or the approval line.
    const kind: AttentionItem['kind'] = rule.effect === 'block' ? 'block' : approval && !isApprovalRule(rule) ? 'approved' : 'approval';
    const text = reason;
    const base = { kind, text, rule: ruleLabel(rule), ...(step ? { step } : {}) };
    const condition = rule.rule.startsWith('stopConditions.') ? rule.rule.slice('stopConditions.'.length) : undefined;
    const matching = condition
      ? flags.flatMap((flag, index) => ((FLAG_CONDITION as Record<string, string>)[flag.kind] === condition ? [index] : []))
      : [];
    if (matching.length) {
      for (const index of matching) {
        covered.add(index);
        items.push({
          ...base,
          detail: flagText(flags[index]!),
          target: { tab: 'evidence', id: `flag-${index}` },
          targetLabel: 'Flags',
        });
      }
    } else {
      items.push({ ...base, ...ruleTarget(rule, input) });
    }
  }
  return items;
}

/** The decision that speaks for a change outside Review: the latest one on its record. */
function standingDecision(change: VerdictInput['change']): DecisionRecord | undefined {
  const decision = change.lastDecision;
  if (!decision || decision.action === 'gate.reviewToPullRequest') return undefined;
  return decision;
}

function stepLabel(action: string): string {
  return (ACTION_LABELS as Record<string, string>)[action as PolicyAction] ?? action;
}

/**
 * The verdict at the top of the review: one state, one headline, and every
 * item that blocks or needs a person, each with its reason, its rule and where
 * to look. The approval is stated here only, and never claimed before it is
 * given: "Needs a reviewer's approval for: …" before, "Approved by … for: …" after.
 */
export function buildVerdict(input: VerdictInput): Verdict {
  const { change, gate } = input;
  const flagsField = input.evidence.fields.flags;
  const flags: Flag[] = flagsField.state === 'present' ? flagsField.value : [];
  const covered = new Set<number>();
  const inReview = change.lane === 'review';
  const approval = change.approval;

  const items: AttentionItem[] = [];
  const gateDecision = gate.decisions[0];
  if (inReview) {
    if (gateDecision) items.push(...decisionItems(gateDecision, input, flags, covered, undefined));
    else items.push(...gate.reasons.map((reason): AttentionItem => ({ kind: 'block', text: reason })));
  } else {
    const standing = standingDecision(change);
    if (standing && standing.effect !== 'allow' && change.lane !== 'closed') {
      items.push(...decisionItems(standing, input, flags, covered, stepLabel(standing.action)));
    } else if (standing) {
      // An allowed step can still name what a reviewer approved (a pull request opened after review).
      items.push(...decisionItems(standing, input, flags, covered, stepLabel(standing.action)).filter((item) => item.kind === 'approved'));
    }
  }
  const cannotApprove = inReview && gate.ready && !validApproval(change) && !approval?.invalidated && input.refusal !== undefined;
  if (cannotApprove) items.unshift({ kind: 'block', text: input.refusal! });
  flags.forEach((flag, index) => {
    if (covered.has(index)) return;
    items.push({
      kind: 'flag',
      text: flagText(flag),
      detail: inReview ? 'No rule of the policy stops it or asks for an approval.' : 'Noted by the diff analysis.',
      ...(inReview && (FLAG_CONDITION as Record<string, string>)[flag.kind]
        ? { rule: `stopConditions.${(FLAG_CONDITION as Record<FlagKind, string>)[flag.kind as FlagKind]}: allow` }
        : {}),
      target: { tab: 'evidence', id: `flag-${index}` },
      targetLabel: 'Flags',
    });
  });
  items.push(...input.warnings.map((warning): AttentionItem => ({ kind: 'warning', text: warning })));

  const common = {
    items,
    ready: gate.ready,
    reasons: [...gate.reasons],
    decisions: [] as Verdict['decisions'],
  };
  if (!inReview) return { ...common, state: 'readOnly', ...readOnlyHeadline(change) };
  if (approval && !approval.invalidated) {
    const covered = items.filter((item) => item.kind === 'approved');
    return {
      ...common,
      state: 'approved',
      headline: `Approved by ${approval.by}${covered.length ? ` for: ${covered[0]!.text}${more(covered.length)}` : ''}`,
    };
  }
  if (approval?.invalidated)
    return {
      ...common,
      state: 'invalidated',
      headline: `Approval invalidated: ${approval.invalidated.reason}`,
      detail: 'Review the change again: it needs a new approval.',
    };
  if (!gate.ready) {
    const blocks = items.filter((item) => item.kind === 'block').length || gate.reasons.length;
    return {
      ...common,
      state: 'blocked',
      headline: `Blocked: ${blocks === 1 ? 'one thing stops' : `${blocks} things stop`} the move to Pull request`,
    };
  }
  if (cannotApprove) return { ...common, state: 'cannotApprove', headline: 'Cannot be approved now' };
  const needed = items.filter((item) => item.kind === 'approval');
  const first = gateDecision?.matchedRules.find((rule) => rule.effect === 'requireApproval' && !isApprovalRule(rule));
  return {
    ...common,
    state: 'needsApproval',
    headline: first
      ? `Needs a reviewer's approval for: ${first.reason ?? first.rule}${more(needed.length)}`
      : "Needs a reviewer's approval; nothing else stops it",
  };
}

function readOnlyHeadline(change: VerdictInput['change']): { headline: string; detail: string } {
  const detail = 'Read-only: only a change in Review can be approved, sent back or rejected.';
  if (change.lane === 'closed') return { headline: `Closed${change.closedReason ? ` (${change.closedReason})` : ''}`, detail };
  if (change.lane === 'pullRequest') {
    const glance = pullRequestGlance(change);
    return { headline: glance ? `In Pull request ${glance}` : 'In Pull request', detail };
  }
  if (change.lane === 'release') {
    const glance = releaseGlance(change);
    return {
      headline: change.release?.needsRollback ? 'In Release: needs rollback' : `In Release${glance ? `: ${glance}` : ''}`,
      detail: `${detail} It was merged; its production actions run from the Lanes view ("Agent Lanes: Run Production Action…").`,
    };
  }
  const standing = standingDecision(change);
  const lane = LANE_LABELS[change.lane];
  if (standing?.effect === 'block') return { headline: `In ${lane}: blocked at ${stepLabel(standing.action)}`, detail };
  if (standing?.effect === 'requireApproval') return { headline: `In ${lane}: ${stepLabel(standing.action)} needs an approval`, detail };
  return {
    headline: `In ${lane}`,
    detail: `${detail} It reaches Review when its sandbox tasks pass.`,
  };
}

/** Why a review is read-only; undefined in Review. */
export function readOnlyReason(change: Pick<Change, 'id' | 'lane' | 'closedReason'>): string | undefined {
  if (change.lane === 'review') return undefined;
  const where =
    change.lane === 'closed' ? `closed${change.closedReason ? ` (${change.closedReason})` : ''}` : `in ${LANE_LABELS[change.lane]}`;
  return `Change ${change.id} is ${where}: this review is read-only. Only a change in Review can be approved, sent back or rejected.`;
}

const CHECK_WORDS: Record<PullRequestView['checks'], string> = {
  none: 'no checks yet',
  pending: 'checks pending',
  passing: 'checks passing',
  failing: 'checks failing',
};

/** The change's pull request as its record holds it. */
export function pullRequestView(change: Pick<Change, 'pullRequest'>): PullRequestView | undefined {
  const pr = change.pullRequest;
  if (!pr) return undefined;
  return {
    number: pr.number,
    url: pr.url,
    repository: pr.repository,
    state: pr.state,
    checks: pr.checks,
    checksText: CHECK_WORDS[pr.checks],
    updatedAt: pr.updatedAt,
  };
}

/**
 * The gate's decision as the review shows it. The gate is asked as if a
 * reviewer had approved; its explanation then reads "approved by the reviewer
 * for: …" before anyone did. Said as it stands instead: needed, or given by whom.
 */
export function gateDecisionForReview(decision: DecisionRecord, change: Pick<Change, 'approval'>): DecisionRecord {
  const pending = decision.matchedRules.filter((rule) => rule.effect === 'requireApproval' && !isApprovalRule(rule));
  if (decision.effect !== 'allow' || !pending.length) return decision;
  const reason = `${pending[0]!.reason ?? pending[0]!.rule}${more(pending.length)}`;
  const approval = validApproval(change);
  return {
    ...decision,
    explanation: approval
      ? `Allowed: ${REVIEW_GATE_LABEL}; approved by ${approval.by} for: ${reason}`
      : `Allowed once approved: ${REVIEW_GATE_LABEL}; needs a reviewer's approval for: ${reason}`,
  };
}
