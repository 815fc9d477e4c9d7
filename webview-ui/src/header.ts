import type { AttentionItem, PageTarget, ReviewModel, VerdictState } from '../../src/core/review/reviewProtocol';
import { type Child, h, formatTime, icon, shortSha } from './dom';

const LANE_LABELS: Record<ReviewModel['lane'], string> = {
  draft: 'Draft',
  sandbox: 'Sandbox',
  review: 'Review',
  pullRequest: 'Pull request',
  release: 'Release',
  closed: 'Closed',
};

const VERDICT_ICONS: Record<VerdictState, string> = {
  blocked: 'circle-slash',
  cannotApprove: 'warning',
  needsApproval: 'person',
  approved: 'verified-filled',
  invalidated: 'error',
  readOnly: 'lock',
};

const ITEM_LOOKS: Record<AttentionItem['kind'], { icon: string; label: string }> = {
  block: { icon: 'circle-slash', label: 'Blocks' },
  approval: { icon: 'person', label: 'Needs approval' },
  approved: { icon: 'pass', label: 'Approved' },
  warning: { icon: 'warning', label: 'Warning' },
  flag: { icon: 'info', label: 'Flag' },
};

/** What the header needs from the page: jumping to an item's place, and opening the pull request. */
export interface HeaderLinks {
  go(target: PageTarget): void;
  openPullRequest(): void;
}

/**
 * Title and facts on two lines, then the verdict: its headline, the approval
 * (said here and nowhere else), the pull request, and every item that blocks
 * or needs a person, each linking to its place in the page.
 */
export function renderHeader(model: ReviewModel, links: HeaderLinks): HTMLElement {
  const lane = model.lane === 'closed' && model.closedReason ? `Closed (${model.closedReason})` : LANE_LABELS[model.lane];
  const fact = (term: string, ...value: Child[]) => h('span', { class: 'fact' }, h('span', { class: 'term', text: `${term} ` }), ...value);
  return h(
    'header',
    { class: 'review-header' },
    h('h1', { text: model.title }),
    h(
      'p',
      { class: 'facts' },
      h('vscode-badge', { text: lane, attrs: { variant: 'counter' } }),
      fact('Agent', model.agentId),
      fact('Policy', model.policyLabel),
      fact('Branch', `${model.repoName} · ${model.branch}`),
      model.createdBy ? fact('Started by', model.createdBy) : null,
      fact('Change', `${model.changeId} · ${formatTime(model.createdAt)}`),
    ),
    renderVerdict(model, links),
  );
}

function approvalLine(model: ReviewModel): HTMLElement | null {
  const approval = model.approval;
  if (!approval) return null;
  const hashes = `for diff ${shortSha(approval.diffHash)}… and evidence ${shortSha(approval.evidenceHash)}…`;
  if (approval.invalidated)
    return h('p', {
      class: 'approval-line',
      text: `Approved by ${approval.by} at ${formatTime(approval.at)}; invalidated at ${formatTime(approval.invalidated.at)}.`,
    });
  if (model.verdict.state === 'approved')
    return h('p', {
      class: 'approval-line',
      text: `At ${formatTime(approval.at)}, ${hashes}. Any change to the worktree or the evidence invalidates it.`,
    });
  return h(
    'p',
    { class: 'approval-line' },
    icon('verified-filled'),
    ` Approved by ${approval.by} at ${formatTime(approval.at)}, ${hashes}.`,
  );
}

function pullRequestLine(model: ReviewModel, links: HeaderLinks): HTMLElement | null {
  const pr = model.pullRequest;
  if (!pr) return null;
  const link = h('a', {
    class: 'pr-link',
    id: 'pr-link',
    text: `${pr.repository}#${pr.number}`,
    attrs: { href: pr.url, title: `Open ${pr.url} in the browser` },
  });
  link.addEventListener('click', (event) => {
    event.preventDefault();
    links.openPullRequest();
  });
  return h(
    'p',
    { class: `pull-request checks-${pr.checks}` },
    icon('git-pull-request'),
    ' Pull request ',
    link,
    ` · ${pr.state} · `,
    icon(pr.checks === 'passing' ? 'pass' : pr.checks === 'failing' ? 'error' : pr.checks === 'pending' ? 'watch' : 'circle-outline'),
    ` ${pr.checksText}`,
    h('span', { class: 'muted', text: ` · as of ${formatTime(pr.updatedAt)}` }),
  );
}

function itemElement(item: AttentionItem, index: number, links: HeaderLinks): HTMLElement {
  const look = ITEM_LOOKS[item.kind];
  let jump: HTMLElement | null = null;
  if (item.target) {
    const target = item.target;
    const href = target.tab === 'evidence' ? `#${target.id}` : target.file !== undefined ? `#file-${target.file}` : '#diff';
    jump = h('a', {
      class: 'jump',
      text: `Go to ${item.targetLabel ?? (target.tab === 'evidence' ? 'the evidence' : 'the diff')}`,
      attrs: { href, 'data-item': index },
    });
    jump.addEventListener('click', (event) => {
      event.preventDefault();
      links.go(target);
    });
  }
  return h(
    'li',
    { class: `attention-item ${item.kind}` },
    icon(look.icon),
    h('span', { class: 'kind', text: look.label }),
    h(
      'div',
      { class: 'item-body' },
      h('p', { class: 'item-text', text: item.text }),
      item.detail ? h('p', { class: 'item-detail', text: item.detail }) : null,
      item.rule || item.step || jump
        ? h(
            'p',
            { class: 'item-rule' },
            item.step ? `At ${item.step} · ` : null,
            item.rule ? h('span', null, 'Rule ', h('code', { text: item.rule })) : null,
            item.rule && jump ? ' · ' : null,
            jump,
          )
        : null,
    ),
  );
}

function renderVerdict(model: ReviewModel, links: HeaderLinks): HTMLElement {
  const verdict = model.verdict;
  const className = verdict.state.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
  return h(
    'section',
    { class: `verdict ${className}`, id: 'verdict', attrs: { 'aria-label': 'Verdict' } },
    h('p', { class: 'verdict-title' }, icon(VERDICT_ICONS[verdict.state]), ` ${verdict.headline}`),
    approvalLine(model),
    pullRequestLine(model, links),
    verdict.detail ? h('p', { class: 'verdict-detail', text: verdict.detail }) : null,
    verdict.items.length
      ? h(
          'ul',
          { class: 'attention', attrs: { 'aria-label': 'What blocks or needs a person' } },
          ...verdict.items.map((item, index) => itemElement(item, index, links)),
        )
      : null,
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
