import type { ReviewModel } from '../../src/core/review/reviewProtocol';
import { h, formatTime, icon, shortSha } from './dom';

const LANE_LABELS: Record<ReviewModel['lane'], string> = {
  draft: 'Draft',
  sandbox: 'Sandbox',
  review: 'Review',
  pullRequest: 'Pull request',
  closed: 'Closed',
};

/** Title, agent, lane, policy, and the verdict: what the reviewer must know first. */
export function renderHeader(model: ReviewModel): HTMLElement {
  const lane = model.lane === 'closed' && model.closedReason ? `Closed (${model.closedReason})` : LANE_LABELS[model.lane];
  const badge = h('vscode-badge', { text: lane, attrs: { variant: 'counter' } });
  const header = h(
    'header',
    { class: 'review-header' },
    h('h1', { text: model.title }),
    h(
      'dl',
      { class: 'meta' },
      h('dt', { text: 'Agent' }),
      h('dd', { text: model.agentId }),
      h('dt', { text: 'Lane' }),
      h('dd', null, badge),
      h('dt', { text: 'Policy' }),
      h('dd', { text: model.policyLabel }),
      h('dt', { text: 'Repository' }),
      h('dd', { text: `${model.repoName} · ${model.branch}` }),
      model.createdBy ? h('dt', { text: 'Started by' }) : null,
      model.createdBy ? h('dd', { text: model.createdBy }) : null,
      h('dt', { text: 'Change' }),
      h('dd', { text: `${model.changeId} · ${formatTime(model.createdAt)}` }),
    ),
    renderVerdict(model),
    ...model.warnings.map((warning) => h('p', { class: 'notice warning', attrs: { role: 'note' } }, icon('warning'), ' ', warning)),
  );
  return header;
}

function renderVerdict(model: ReviewModel): HTMLElement {
  const approval = model.approval;
  if (approval?.invalidated) {
    return h(
      'section',
      { class: 'verdict invalidated', id: 'verdict', attrs: { 'aria-label': 'Verdict' } },
      h('p', { class: 'verdict-title' }, icon('error'), ` Approval invalidated: ${approval.invalidated.reason}`),
      h('p', {
        text: `Approved by ${approval.by} at ${formatTime(approval.at)}; invalidated at ${formatTime(approval.invalidated.at)}. Review the change again.`,
      }),
      gateLine(model),
    );
  }
  if (approval) {
    return h(
      'section',
      { class: 'verdict approved', id: 'verdict', attrs: { 'aria-label': 'Verdict' } },
      h('p', { class: 'verdict-title' }, icon('verified-filled'), ` Approved by ${approval.by}`),
      h('p', {
        text: `At ${formatTime(approval.at)}, for diff ${shortSha(approval.diffHash)}… and evidence ${shortSha(approval.evidenceHash)}…. Any change to the worktree or the evidence invalidates it.`,
      }),
    );
  }
  const state = model.verdict.ready && model.actions.approve.enabled ? 'ready' : 'blocked';
  return h('section', { class: `verdict ${state}`, id: 'verdict', attrs: { 'aria-label': 'Verdict' } }, gateLine(model));
}

function gateLine(model: ReviewModel): HTMLElement {
  if (model.verdict.ready && model.actions.approve.enabled)
    return h(
      'p',
      { class: 'verdict-title' },
      icon('pass'),
      ' Ready to approve: the Review → Pull request gate is satisfied but for the approval.',
    );
  if (model.verdict.ready) {
    return h(
      'div',
      null,
      h('p', { class: 'verdict-title' }, icon('warning'), ' The gate is satisfied but for the approval, which cannot be given now'),
      h('ul', { class: 'reasons' }, h('li', { text: model.actions.approve.reason ?? '' })),
    );
  }
  return h(
    'div',
    null,
    h('p', { class: 'verdict-title' }, icon('circle-slash'), ' Blocked'),
    h('ul', { class: 'reasons' }, ...model.verdict.reasons.map((reason) => h('li', { text: reason }))),
  );
}

/** Comments of earlier "request changes", oldest first. */
export function renderRequestedChanges(model: ReviewModel): HTMLElement | null {
  if (!model.requestedChanges.length) return null;
  return h(
    'section',
    { class: 'requested-changes', attrs: { 'aria-labelledby': 'requested-h' } },
    h('h2', { id: 'requested-h', text: 'Changes requested earlier' }),
    h(
      'ol',
      null,
      ...model.requestedChanges.map((entry) =>
        h(
          'li',
          null,
          h('p', { class: 'byline', text: `${entry.by}, ${formatTime(entry.at)}` }),
          h('p', { class: 'comment', text: entry.comment }),
        ),
      ),
    ),
  );
}
