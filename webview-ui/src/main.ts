// The review webview: renders the model the host sends, asks for file diffs
// on demand, and sends the reviewer's actions as requests.
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-textarea/index.js';
import '@vscode/codicons/dist/codicon.css';
import { type PageTarget, type ReviewModel, parseHostMessage } from '../../src/core/review/reviewProtocol';
import { Actions } from './actions';
import { DiffPanel } from './diff';
import { h } from './dom';
import { renderEvidence } from './evidence';
import { renderHeader, renderRequestedChanges } from './header';
import { Host } from './host';
import { ViewStateStore } from './state';
import { Tabs } from './tabs';

const MAX_REPORTED_ERRORS = 10;

function meta(name: string): string {
  return document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? '';
}

const changeId = meta('agent-lanes-change');
const repoRoot = meta('agent-lanes-repo');
const host = new Host(changeId);
const state = new ViewStateStore(host, repoRoot, changeId);
const app = document.getElementById('app')!;

let reportedErrors = 0;
function reportError(message: string): void {
  console.error(message);
  if (reportedErrors++ < MAX_REPORTED_ERRORS) host.notify({ type: 'webviewError', changeId, message: message.slice(0, 5_000) });
}
window.addEventListener('error', (event) => reportError(`${event.message} (${event.filename}:${event.lineno})`));
window.addEventListener('unhandledrejection', (event) => reportError(`Unhandled rejection: ${String(event.reason)}`));

const actions = new Actions(host, state);
const diff = new DiffPanel(host, state, (kind, text) => actions.showStatus(kind, text));
const openSections = new Set(state.data.openSections);
const headerSlot = h('div', { class: 'header-slot' });
const requestedSlot = h('div', { class: 'requested-slot' });
const evidenceSlot = h('div', { class: 'evidence-slot' });
const tabs = new Tabs(
  [
    { key: 'files', label: 'Files changed', panel: diff.element },
    { key: 'evidence', label: 'Evidence', panel: evidenceSlot },
  ],
  state.data.tab,
  (key) => {
    state.update({ tab: key });
    if (key === 'evidence') drawEvidence();
  },
);
const skip = h('a', { class: 'skip-link', text: 'Skip to the diff', attrs: { href: '#diff' } });
skip.addEventListener('click', (event) => {
  event.preventDefault();
  tabs.select('files');
  diff.element.scrollIntoView({ block: 'start' });
  diff.element.focus({ preventScroll: true });
});

/** Takes the reader to an item's place: its tab, then the file or the evidence element, focused and marked for a moment. */
function go(target: PageTarget): void {
  tabs.select(target.tab);
  if (target.tab === 'evidence') drawEvidence();
  if (target.tab === 'files') {
    if (target.file !== undefined) diff.jumpTo(target.file);
    else {
      diff.element.scrollIntoView({ block: 'start' });
      diff.element.focus({ preventScroll: true });
    }
    return;
  }
  const element = document.getElementById(target.id);
  if (!element) return;
  const details = element.closest('details');
  if (details) details.open = true;
  if (!element.hasAttribute('tabindex')) element.setAttribute('tabindex', '-1');
  element.scrollIntoView({ block: 'center' });
  element.focus({ preventScroll: true });
  element.classList.remove('flash');
  void element.offsetWidth;
  element.classList.add('flash');
}

const links = {
  go,
  openPullRequest: () =>
    void host.request('openPullRequest', {}).then((response) => {
      if (!response.ok) actions.showStatus('error', response.error);
    }),
};

let firstRender = true;
/** The model whose evidence is still to be drawn. */
let evidenceModel: ReviewModel | undefined;
let evidenceTimer: ReturnType<typeof setTimeout> | undefined;

function drawEvidence(): void {
  if (evidenceTimer) clearTimeout(evidenceTimer);
  evidenceTimer = undefined;
  const model = evidenceModel;
  if (!model) return;
  evidenceModel = undefined;
  evidenceSlot.replaceChildren(
    renderEvidence(model, openSections, (key, open) => {
      if (open) openSections.add(key);
      else openSections.delete(key);
      state.update({ openSections: [...openSections] });
    }),
  );
}

function render(model: ReviewModel): void {
  const started = performance.now();
  if (firstRender) app.replaceChildren(skip, headerSlot, actions.element, requestedSlot, tabs.element);
  app.removeAttribute('aria-busy');
  // "first" while the model is the one from stored facts (git and the hashes follow), then "full".
  app.dataset.model = model.provisional ? 'first' : 'full';
  document.title = `Review: ${model.title}`;
  headerSlot.replaceChildren(renderHeader(model, links));
  actions.update(model);
  requestedSlot.replaceChildren(...[renderRequestedChanges(model)].filter((e): e is HTMLElement => e !== null));
  tabs.setLabel(
    'files',
    model.diff.state === 'ok' ? `Files changed (${model.diff.totals.files.toLocaleString('en-US')})` : 'Files changed',
  );
  const missingRequired = Object.values(model.evidence.fields).filter((field) => field.state === 'missing' && field.required).length;
  tabs.setLabel('evidence', missingRequired ? `Evidence (${missingRequired} required missing)` : 'Evidence');
  // The evidence is drawn at once when its tab is on show; behind the diff, right after the frame is painted.
  evidenceModel = model;
  if (tabs.selected === 'evidence') drawEvidence();
  diff.update(model.diff);
  const files = model.diff.state === 'ok' ? model.diff.files.length : 0;
  const restoreScroll = firstRender && state.data.scrollY > 0;
  firstRender = false;
  if (restoreScroll) window.scrollTo(0, state.data.scrollY);
  // Reported once the frame with the new content is laid out.
  requestAnimationFrame(() => {
    setTimeout(() => host.notify({ type: 'rendered', changeId, files, ms: performance.now() - started }), 0);
    if (evidenceModel && !evidenceTimer) evidenceTimer = setTimeout(drawEvidence, 0);
  });
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const parsed = parseHostMessage(event.data);
  if (!parsed.ok) {
    reportError(`Ignored a message from VS Code that does not match the protocol: ${parsed.error}`);
    return;
  }
  const message = parsed.message;
  switch (message.type) {
    case 'model':
      if (message.model.changeId !== changeId) {
        reportError(`Ignored a model for change ${message.model.changeId}; this review shows ${changeId}.`);
        return;
      }
      try {
        render(message.model);
      } catch (error) {
        reportError(`Could not render the review: ${(error as Error).stack ?? String(error)}`);
      }
      return;
    case 'notice':
      if (firstRender) app.replaceChildren(h('p', { class: `notice ${message.level}`, text: message.message }));
      else actions.showStatus(message.level === 'error' ? 'error' : 'info', message.message);
      return;
    case 'response':
      host.settle(message);
      return;
  }
});

let scrollTimer: ReturnType<typeof setTimeout> | undefined;
window.addEventListener('scroll', () => {
  if (scrollTimer) return;
  scrollTimer = setTimeout(() => {
    scrollTimer = undefined;
    state.update({ scrollY: Math.round(window.scrollY) });
  }, 250);
});

host.notify({ type: 'ready', changeId });
