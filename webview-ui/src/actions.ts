import type { ReviewModel } from '../../src/core/review/reviewProtocol';
import { approvalWithdrawn, MAX_COMMENT_LENGTH } from '../../src/core/review/reviewProtocol';
import { h, icon } from './dom';
import type { Host } from './host';
import type { ViewStateStore } from './state';

type Button = HTMLElement & { disabled: boolean };
type TextArea = HTMLElement & { value: string };

function button(id: string, label: string, options: { secondary?: boolean; icon?: string } = {}): Button {
  const element = h('vscode-button', { id, text: label, attrs: { secondary: options.secondary, icon: options.icon } }) as Button;
  return element;
}

function textarea(id: string, label: string, placeholder: string): TextArea {
  return h('vscode-textarea', {
    id,
    attrs: { 'aria-label': label, placeholder, rows: 4, maxlength: MAX_COMMENT_LENGTH, resize: 'vertical' },
  }) as TextArea;
}

/** Why Approve is unavailable, without repeating what the verdict above already lists. */
function approveReason(model: ReviewModel): (Node | string)[] {
  const approve = model.actions.approve;
  if (approve.enabled) return [];
  const state = model.verdict.state;
  if (state === 'blocked' || state === 'cannotApprove' || state === 'invalidated')
    return [icon('info'), ' Approve is unavailable until what the verdict above lists is resolved.'];
  return [icon('info'), ` Approve is unavailable: ${approve.reason ?? ''}`];
}

/**
 * Approve, Request changes (with a comment) and Reject (after a
 * confirmation). The buttons stay in place across model updates so focus is
 * not lost; what is disabled says why.
 */
export class Actions {
  readonly element: HTMLElement;
  private readonly approve = button('approve', 'Approve', { icon: 'check' });
  private readonly requestChanges = button('request-changes', 'Request changes…', { secondary: true, icon: 'comment-discussion' });
  private readonly reject = button('reject', 'Reject…', { secondary: true, icon: 'close' });
  private readonly approveReason = h('p', { class: 'action-reason', id: 'approve-reason' });
  private readonly buttonRow = h(
    'div',
    { class: 'action-buttons' },
    h('div', { class: 'button-row' }, this.approve, this.requestChanges, this.reject),
    this.approveReason,
  );
  private readonly comment = textarea(
    'comment',
    'Comment for the agent (required)',
    'What should the agent change? It is given this comment when it runs again.',
  );
  private readonly commentError = h('p', { class: 'field-error', id: 'comment-error', attrs: { role: 'alert' } });
  private readonly commentForm: HTMLElement;
  private readonly rejectComment = textarea('reject-comment', 'Why it is rejected (optional)', 'Why is this change rejected? (optional)');
  private readonly rejectForm: HTMLElement;
  private readonly status = h('p', {
    class: 'status',
    id: 'action-status',
    attrs: { role: 'status', 'aria-live': 'polite', tabindex: -1 },
  });
  private model: ReviewModel | undefined;
  private busy = false;
  /** The approval the status line reports ("Approved by …"), while it does. */
  private statusApproval: { diffHash: string; evidenceHash: string } | undefined;

  constructor(
    private readonly host: Host,
    private readonly state: ViewStateStore,
  ) {
    this.approve.setAttribute('aria-describedby', 'approve-reason');
    this.approve.addEventListener('click', () => void this.onApprove());
    this.requestChanges.addEventListener('click', () => this.openForm('comment'));
    this.reject.addEventListener('click', () => this.openForm('reject'));
    this.comment.value = state.data.commentDraft;
    this.comment.addEventListener('input', () => this.state.update({ commentDraft: this.comment.value.slice(0, MAX_COMMENT_LENGTH) }));

    const send = button('send-request-changes', 'Send back to Draft', { icon: 'reply' });
    send.addEventListener('click', () => void this.onRequestChanges());
    const cancelComment = button('cancel-request-changes', 'Cancel', { secondary: true });
    cancelComment.addEventListener('click', () => this.closeForms(this.requestChanges));
    this.commentForm = h(
      'div',
      { class: 'action-form', id: 'comment-form', attrs: { hidden: true, role: 'group', 'aria-labelledby': 'comment-label' } },
      h('label', {
        id: 'comment-label',
        attrs: { for: 'comment' },
        text: 'Comment for the agent (required). The change goes back to Draft; the agent is given this comment when it runs again.',
      }),
      this.comment,
      this.commentError,
      h('div', { class: 'button-row' }, send, cancelComment),
    );

    const confirm = button('confirm-reject', 'Reject change', { icon: 'close' });
    confirm.addEventListener('click', () => void this.onReject());
    const cancelReject = button('cancel-reject', 'Cancel', { secondary: true });
    cancelReject.addEventListener('click', () => this.closeForms(this.reject));
    this.rejectForm = h(
      'div',
      { class: 'action-form danger', id: 'reject-form', attrs: { hidden: true, role: 'group', 'aria-labelledby': 'reject-label' } },
      h('p', {
        id: 'reject-label',
        text: 'Reject this change? It is closed and its worktree removed; its record and audit trail stay. This cannot be undone.',
      }),
      h('label', { attrs: { for: 'reject-comment' }, text: 'Why (optional)' }),
      this.rejectComment,
      h('div', { class: 'button-row' }, confirm, cancelReject),
    );

    for (const form of [this.commentForm, this.rejectForm]) {
      form.addEventListener('keydown', (event) => {
        if (event.key === 'Escape') {
          event.preventDefault();
          this.closeForms(form === this.commentForm ? this.requestChanges : this.reject);
        } else if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          void (form === this.commentForm ? this.onRequestChanges() : this.onReject());
        }
      });
    }

    // A comment started before a reload comes back with its form open.
    this.commentForm.hidden = !state.data.commentDraft;
    this.element = h(
      'section',
      { class: 'actions', attrs: { 'aria-label': 'Review actions' } },
      this.buttonRow,
      this.commentForm,
      this.rejectForm,
      this.status,
    );
  }

  update(model: ReviewModel): void {
    this.model = model;
    // An approval that was invalidated (or replaced) is no longer reported as given: the header says what holds now.
    if (this.statusApproval && approvalWithdrawn(model, this.statusApproval)) this.clearStatus();
    // Once the approved change has left Review, the header states the approval: the status line would say it twice.
    if (this.statusApproval && model.lane !== 'review') this.clearStatus();
    this.applyEnabled();
  }

  private clearStatus(): void {
    this.statusApproval = undefined;
    this.status.className = 'status';
    this.status.setAttribute('role', 'status');
    this.status.replaceChildren();
  }

  private applyEnabled(): void {
    const model = this.model;
    const actions = model?.actions;
    // Outside Review there is nothing to decide: the actions are not shown at all (the status line stays).
    const inReview = model?.lane === 'review';
    this.element.classList.toggle('read-only', !inReview);
    this.buttonRow.hidden = !inReview;
    if (!inReview) {
      this.commentForm.hidden = true;
      this.rejectForm.hidden = true;
    }
    // An approval that holds needs no button: the header says who gave it.
    this.approve.hidden = model?.verdict.state === 'approved';
    this.approve.disabled = this.busy || !actions?.approve.enabled;
    this.requestChanges.disabled = this.busy || !actions?.requestChanges.enabled;
    this.reject.disabled = this.busy || !actions?.reject.enabled;
    this.approveReason.replaceChildren(...(model && inReview && !this.approve.hidden ? approveReason(model) : []));
    if (actions && !actions.requestChanges.enabled && !actions.reject.enabled) {
      this.commentForm.hidden = true;
      this.rejectForm.hidden = true;
    }
  }

  private openForm(which: 'comment' | 'reject'): void {
    this.commentForm.hidden = which !== 'comment';
    this.rejectForm.hidden = which !== 'reject';
    this.commentError.textContent = '';
    (which === 'comment' ? this.comment : this.rejectComment).focus();
  }

  private closeForms(returnFocusTo: HTMLElement): void {
    this.commentForm.hidden = true;
    this.rejectForm.hidden = true;
    returnFocusTo.focus();
  }

  showStatus(kind: 'info' | 'success' | 'error', text: string): void {
    this.statusApproval = undefined;
    this.status.className = `status ${kind}`;
    this.status.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    this.status.replaceChildren(icon(kind === 'error' ? 'error' : kind === 'success' ? 'pass' : 'info'), ` ${text}`);
  }

  private async run(label: string, work: () => Promise<{ ok: true; message?: string } | { ok: false; error: string }>): Promise<boolean> {
    if (this.busy) return false;
    this.busy = true;
    this.applyEnabled();
    this.showStatus('info', `${label}…`);
    try {
      const result = await work();
      if (result.ok) this.showStatus('success', result.message ?? 'Done.');
      else this.showStatus('error', result.error);
      return result.ok;
    } finally {
      this.busy = false;
      this.applyEnabled();
    }
  }

  private async onApprove(): Promise<void> {
    const model = this.model;
    if (!model || !model.actions.approve.enabled || model.diff.state !== 'ok' || !model.evidence.hash) return;
    const { hash: diffHash } = model.diff;
    const evidenceHash = model.evidence.hash;
    const approved = await this.run('Approving', () => this.host.request('approve', { diffHash, evidenceHash }));
    if (!approved) return;
    this.statusApproval = { diffHash, evidenceHash };
    // The model may have moved on while the answer was on its way.
    if (this.model && approvalWithdrawn(this.model, this.statusApproval)) this.clearStatus();
  }

  private async onRequestChanges(): Promise<void> {
    const comment = this.comment.value.trim();
    if (!comment) {
      this.commentError.textContent = 'Write what the agent should change: the comment is required.';
      this.comment.focus();
      return;
    }
    const ok = await this.run('Requesting changes', () =>
      this.host.request('requestChanges', { comment: comment.slice(0, MAX_COMMENT_LENGTH) }),
    );
    if (ok) {
      this.comment.value = '';
      this.state.update({ commentDraft: '' });
      this.commentForm.hidden = true;
      this.status.focus();
    }
  }

  private async onReject(): Promise<void> {
    const comment = this.rejectComment.value.trim();
    const ok = await this.run('Rejecting', () =>
      this.host.request('reject', { confirmed: true, ...(comment ? { comment: comment.slice(0, MAX_COMMENT_LENGTH) } : {}) }),
    );
    if (ok) this.rejectForm.hidden = true;
  }
}
