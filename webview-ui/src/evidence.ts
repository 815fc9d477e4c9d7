import {
  type DecisionView,
  EVIDENCE_SECTION_ORDER,
  EVIDENCE_SECTION_TITLES,
  type EvidenceFieldView,
  type EvidenceSectionKey,
  type EvidenceView,
  type IsolationView,
  type ReviewModel,
  type TaskView,
} from '../../src/core/review/reviewProtocol';
import { type Child, formatDuration, formatTime, h, icon, plural, shortSha } from './dom';

const OUTCOME_ICONS: Record<string, string> = {
  passed: 'pass',
  failed: 'error',
  timedOut: 'watch',
  cancelled: 'circle-slash',
  error: 'error',
  skipped: 'debug-step-over',
};

function missing(field: { state: 'missing'; required: boolean }): HTMLElement {
  return field.required
    ? h('p', { class: 'missing required' }, icon('error'), ' Missing: required by policy')
    : h('p', { class: 'missing' }, 'Not recorded');
}

type Claims = Extract<EvidenceView['fields']['claims'], { state: 'present' }>['value'];

const PROOF_TEXT = {
  backed: 'backed by the sandbox',
  contradicted: 'not backed: the sandbox says otherwise',
  unchecked: 'not checked: no test task ran',
} as const;

/** What the agent says it did and claims, each claim next to the sandbox's word on it. */
function claimsSection(value: Claims): Child[] {
  const out: Child[] = [];
  const facts: string[] = [];
  if (value.model) facts.push(`model ${value.model}`);
  if (value.usage)
    facts.push(
      `${value.usage.inputTokens.toLocaleString('en-US')} input and ${value.usage.outputTokens.toLocaleString('en-US')} output tokens`,
    );
  if (value.toolCalls.length) facts.push(`tools: ${value.toolCalls.map((tool) => `${tool.name} ×${tool.count}`).join(', ')}`);
  if (facts.length) out.push(h('p', { text: `From the agent's transcript: ${facts.join(' · ')}.` }));
  for (const check of value.checks) {
    const where = check.source === 'command' ? 'Says it ran' : check.source === 'summary' ? 'Says in its report' : 'Says';
    out.push(
      h(
        'p',
        { class: check.proof === 'contradicted' ? 'notice warning claim' : 'claim' },
        icon(check.proof === 'backed' ? 'pass' : check.proof === 'contradicted' ? 'warning' : 'question'),
        ` ${where} `,
        h('q', { text: check.text }),
        ` — ${PROOF_TEXT[check.proof]}${check.tasks.length ? ` (${check.tasks.join('; ')})` : ''}.`,
      ),
    );
  }
  if (value.commands.length) {
    const details = h(
      'details',
      { class: 'claimed-commands' },
      h('summary', { text: `Commands the agent says it ran (${value.commands.length})` }),
      h(
        'ul',
        null,
        ...value.commands.map((command) =>
          h(
            'li',
            null,
            h('code', { text: command.command }),
            command.exitCode === null ? ' — no exit code' : ` — exit ${command.exitCode}`,
          ),
        ),
      ),
    );
    out.push(details);
  }
  return out;
}

type FailsWithoutChange = Extract<EvidenceView['fields']['failsWithoutChange'], { state: 'present' }>['value'];

/** Which of the change's tests ran against which base, and per test file where the runner said. */
function failsWithoutChangeView(value: FailsWithoutChange): Child[] {
  const out: Child[] = [
    h('p', {
      text: `${value.failOnBase === 1 ? '1 task fails' : `${value.failOnBase} tasks fail`} on the base commit (so ${value.failOnBase === 1 ? 'it exercises' : 'they exercise'} the change); ${value.passOnBase} ${value.passOnBase === 1 ? 'passes' : 'pass'} there too; ${value.notRun} not run on the base.`,
    }),
  ];
  if (value.baseSha && value.testFiles.length) {
    out.push(
      h(
        'p',
        null,
        `Ran with the change's ${plural(value.testFiles.length, 'test file')} on base `,
        h('code', { text: shortSha(value.baseSha) }),
        value.removedTestFiles.length ? ` (${plural(value.removedTestFiles.length, 'test file')} it removes left out):` : ':',
      ),
    );
    const byPath = new Map<string, boolean[]>();
    for (const file of value.files) byPath.set(file.path, [...(byPath.get(file.path) ?? []), file.failsOnBase]);
    out.push(
      h(
        'ul',
        { class: 'base-files' },
        ...value.testFiles.slice(0, 50).map((path) => {
          const results = byPath.get(path);
          const verdict =
            results === undefined
              ? ' — not named by the runner'
              : results.every(Boolean)
                ? ' — fails on the base'
                : ' — passes on the base too';
          return h(
            'li',
            null,
            results === undefined ? null : icon(results.every(Boolean) ? 'pass' : 'warning'),
            h('code', { text: path }),
            verdict,
          );
        }),
        value.testFiles.length > 50 ? h('li', { text: `and ${value.testFiles.length - 50} more` }) : null,
      ),
    );
  }
  return out;
}

function list(items: readonly string[]): HTMLElement {
  return h('ul', { class: 'prose-list' }, ...items.map((item) => h('li', { text: item })));
}

function countsText(task: TaskView): string {
  if (!task.counts) return '—';
  const { passed, failed, skipped, format } = task.counts;
  return `${passed} passed, ${failed} failed, ${skipped} skipped (${format})`;
}

function failsOnBaseText(value: boolean | null): string {
  if (value === true) return 'Yes: fails on the base commit';
  if (value === false) return 'No: passes on the base too';
  return 'Not run on the base';
}

function tasksTable(tasks: readonly TaskView[]): HTMLElement {
  const head = h(
    'tr',
    null,
    ...['Task', 'Result', 'Counts', 'Duration', 'Network', 'Isolation', 'Fails without the change'].map((title) =>
      h('th', { text: title, attrs: { scope: 'col' } }),
    ),
  );
  const rows = tasks.map((task) =>
    h(
      'tr',
      { class: `task ${task.outcome}` },
      h(
        'th',
        { attrs: { scope: 'row' } },
        h('span', { class: 'task-id', text: task.id }),
        task.required ? h('span', { class: 'tag', text: 'required' }) : null,
        h('code', { class: 'command', text: task.command }),
        task.message ? h('span', { class: 'task-message', text: task.message }) : null,
      ),
      h(
        'td',
        null,
        icon(OUTCOME_ICONS[task.outcome] ?? 'question', `outcome-${task.outcome}`),
        ` ${task.outcome}${task.exitCode !== null ? ` (exit ${task.exitCode})` : ''}`,
      ),
      h('td', { text: countsText(task) }),
      h('td', { text: formatDuration(task.durationMs) }),
      h('td', { text: task.networkMode }),
      h('td', { text: `${task.isolation}${task.image ? ` · ${task.image}` : ''}` }),
      h('td', { text: failsOnBaseText(task.failsOnBase) }),
    ),
  );
  return h(
    'div',
    { class: 'table-wrap', attrs: { tabindex: 0, role: 'region', 'aria-label': 'Tasks run' } },
    h('table', { class: 'tasks' }, h('thead', null, head), h('tbody', null, ...rows)),
  );
}

function decisionsList(decisions: readonly DecisionView[]): HTMLElement {
  return h(
    'ul',
    { class: 'decisions' },
    ...decisions.map((decision) =>
      h(
        'li',
        { class: `decision ${decision.effect}` },
        h(
          'p',
          null,
          h('span', { class: `effect ${decision.effect}`, text: decision.effect }),
          ' ',
          h('strong', { text: decision.action }),
          ` · ${formatTime(decision.at)}`,
        ),
        h('p', { class: 'explanation', text: decision.explanation }),
        decision.rules.length
          ? h(
              'ul',
              { class: 'rules' },
              ...decision.rules.map((rule) =>
                h(
                  'li',
                  null,
                  h('code', { text: `${rule.policy} ${rule.rule}` }),
                  `: ${rule.effect}${rule.reason ? ` (${rule.reason})` : ''}`,
                ),
              ),
            )
          : null,
      ),
    ),
  );
}

const ISOLATION_STATE: Record<IsolationView['state'], { icon: string; class: string }> = {
  verified: { icon: 'verified-filled', class: 'notice ok' },
  unverified: { icon: 'error', class: 'notice error' },
  unconfined: { icon: 'error', class: 'notice error' },
  none: { icon: 'comment-discussion', class: 'notice info' },
};

/** The summary with its verdict ("Isolation verified", "Unconfined") in bold. */
function isolationSummary(summary: string): Child[] {
  const colon = summary.indexOf(': ');
  const verdict = colon > 0 ? summary.slice(0, colon) : summary;
  return [h('strong', { text: verdict.charAt(0).toUpperCase() + verdict.slice(1) }), colon > 0 ? summary.slice(colon) : ''];
}

/** "sha256:0123456789ab…": enough to compare by eye; the whole digest is its tooltip. */
function shortDigest(digest: string): string {
  const [algorithm, hex] = digest.includes(':') ? (digest.split(':', 2) as [string, string]) : ['', digest];
  return `${algorithm ? `${algorithm}:` : ''}${hex.length > 12 ? `${hex.slice(0, 12)}…` : hex}`;
}

function isolationFacts(isolation: IsolationView): HTMLElement {
  const row = (term: string, ...value: Child[]) => [h('dt', { text: term }), h('dd', null, ...value)];
  return h(
    'dl',
    { class: 'meta isolation-facts' },
    ...row('Backend', h('code', { text: isolation.backend ?? '' }), isolation.sandbox ? ` · ${isolation.sandbox}` : ''),
    ...(isolation.image || isolation.imageDigest
      ? row(
          'Image',
          isolation.image ? h('code', { text: isolation.image }) : null,
          isolation.image && isolation.imageDigest ? ' ' : null,
          isolation.imageDigest
            ? h('code', { class: 'sha', text: shortDigest(isolation.imageDigest), attrs: { title: isolation.imageDigest } })
            : null,
        )
      : []),
    ...row(
      'Network',
      isolation.allow.length
        ? `egress only to ${isolation.allow.join(', ')} (${plural(isolation.allowedTotal, 'connection')} allowed)`
        : 'off',
    ),
    ...(isolation.limits.length ? row('Limits', isolation.limits.join(', ')) : []),
  );
}

function isolationBody(
  isolation: IsolationView,
  openSections: ReadonlySet<string>,
  onToggle: (key: string, open: boolean) => void,
): Child[] {
  const state = ISOLATION_STATE[isolation.state];
  const status = h(
    'p',
    { class: `isolation ${isolation.state} ${state.class}`, attrs: { role: isolation.state === 'verified' ? undefined : 'note' } },
    icon(state.icon),
    ' ',
    ...isolationSummary(isolation.summary),
  );
  if (isolation.state === 'none') return [status];
  const escaped = isolation.probes.filter((probe) => probe.outcome === 'escaped');
  const probes = h(
    'details',
    {
      class: 'probes',
      attrs: { open: openSections.has('isolation-probes') || isolation.probes.some((probe) => probe.outcome === 'escaped') },
    },
    h('summary', {
      text: `The canary's ${plural(isolation.probes.length, 'probe')}${isolation.canaryMs !== undefined ? ` (${formatDuration(isolation.canaryMs)})` : ''}`,
    }),
    h(
      'ul',
      { class: 'prose-list' },
      ...isolation.probes.map((probe) =>
        h(
          'li',
          null,
          icon(probe.outcome === 'escaped' ? 'error' : probe.outcome === 'refused' ? 'pass' : 'circle-slash'),
          ` ${probe.name}: ${probe.outcome} (${probe.detail})`,
        ),
      ),
    ),
  );
  probes.addEventListener('toggle', () => onToggle('isolation-probes', probes.open));
  const listed = isolation.refused.length;
  return [
    status,
    isolation.state === 'unconfined' ? null : isolationFacts(isolation),
    escaped.length
      ? h(
          'p',
          { class: 'notice error' },
          icon('error'),
          ` The canary got out: ${escaped.map((probe) => `${probe.name} (${probe.detail})`).join('; ')}.`,
        )
      : null,
    isolation.stoppedFor
      ? h('p', { class: 'notice warning' }, icon('warning'), ` Stopped by the boundary: ${isolation.stoppedFor}.`)
      : null,
    isolation.notEnforced.length
      ? h('p', { class: 'notice warning' }, icon('warning'), ` Not enforced by this backend: ${isolation.notEnforced.join(', ')}.`)
      : null,
    isolation.refusedTotal
      ? h(
          'div',
          { class: 'refused' },
          h('p', {
            text: `${plural(isolation.refusedTotal, 'connection')} refused by the egress allowlist${listed < isolation.refusedTotal ? ` (the first ${listed} listed)` : ''}:`,
          }),
          h(
            'ul',
            { class: 'prose-list' },
            ...isolation.refused.map((record) =>
              h('li', null, h('code', { text: `${record.host}:${record.port}` }), ` at ${formatTime(record.at)}`),
            ),
          ),
        )
      : null,
    isolation.probes.length ? probes : null,
  ];
}

function body(
  key: EvidenceSectionKey,
  model: ReviewModel,
  openSections: ReadonlySet<string>,
  onToggle: (key: string, open: boolean) => void,
): Child[] {
  const fields = model.evidence.fields;
  const show = <T>(field: EvidenceFieldView<T>, render: (value: T) => Child | Child[]): Child[] => {
    if (field.state === 'missing') return [missing(field)];
    const out = render(field.value);
    return Array.isArray(out) ? out : [out];
  };
  switch (key) {
    case 'summary':
      return show(fields.summary, (text) => h('p', { class: 'prose', text }));
    case 'filesTouched':
      return show(fields.filesTouched, (value) => [
        h('p', {
          text: `${plural(value.files, 'file')}, +${value.additions.toLocaleString('en-US')} −${value.deletions.toLocaleString('en-US')} lines; listed with their line counts under Files changed.`,
        }),
        value.matchesReviewedDiff === true
          ? h('p', { class: 'ok' }, icon('pass'), ` Recorded for the diff under Files changed (${shortSha(value.diffHash)}…).`)
          : null,
        value.matchesReviewedDiff === false
          ? h(
              'p',
              { class: 'notice warning' },
              icon('warning'),
              ` Recorded for another diff (${shortSha(value.diffHash)}…) than the one under Files changed.`,
            )
          : null,
      ]);
    case 'tests':
      return show(fields.tests, (tasks) => tasksTable(tasks));
    case 'claims':
      return show(fields.claims, (value) => claimsSection(value));
    case 'failsWithoutChange':
      return show(fields.failsWithoutChange, (value) => failsWithoutChangeView(value));
    case 'assumptions':
      return show(fields.assumptions, list);
    case 'confidenceLimits':
      return show(fields.confidenceLimits, list);
    case 'prompt':
      return show(fields.prompt, (prompt) => {
        const details = h(
          'details',
          { class: 'prompt', attrs: { open: openSections.has('prompt') } },
          h('summary', { text: `Show the prompt (redacted${prompt.redactions ? `, ${plural(prompt.redactions, 'redaction')}` : ''})` }),
          h('pre', { class: 'prompt-text', text: prompt.redacted, attrs: { tabindex: 0 } }),
        );
        details.addEventListener('toggle', () => onToggle('prompt', details.open));
        return [h('p', null, 'Reference id ', h('code', { text: prompt.ref })), details];
      });
    case 'agent':
      return show(fields.agent, (agent) =>
        h('p', null, h('code', { text: agent.id }), agent.version ? `, version ${agent.version}` : ', version not reported'),
      );
    case 'isolation':
      // Evidence from before agent boundaries: said so, not left blank (a chat agent's is "none", from the model).
      if (fields.isolation.state === 'missing')
        return [h('p', { class: 'missing' }, 'Not recorded (evidence from before agent boundaries).')];
      return show(fields.isolation, (isolation) => isolationBody(isolation, openSections, onToggle));
    case 'baseAndHead':
      return show(fields.baseAndHead, (value) =>
        h(
          'p',
          null,
          'Base ',
          h('code', { text: value.baseRef }),
          ' ',
          h('code', { class: 'sha', text: value.baseSha }),
          h('br'),
          'Head ',
          h('code', { class: 'sha', text: value.headSha ?? 'not recorded' }),
        ),
      );
    case 'flags':
      return show(fields.flags, (flags) =>
        flags.length
          ? h(
              'ul',
              { class: 'flags' },
              ...flags.map((flag, index) =>
                h(
                  'li',
                  { class: `flag ${flag.kind}`, id: `flag-${index}`, attrs: { tabindex: -1 } },
                  icon('warning'),
                  ' ',
                  h('strong', { text: flag.label }),
                  flag.path ? h('code', { text: ` ${flag.path}` }) : null,
                  `: ${flag.detail}`,
                ),
              ),
            )
          : h('p', { class: 'ok' }, icon('pass'), ' No flags.'),
      );
    case 'policyDecisions': {
      const now = model.verdict.decisions.length ? [h('h4', { text: 'This gate, now' }), decisionsList(model.verdict.decisions)] : [];
      const recorded = show(fields.policyDecisions, (decisions) => [
        h('h4', { text: 'Recorded with the evidence' }),
        decisionsList(decisions),
      ]);
      return [...now, ...recorded];
    }
  }
}

/** The evidence, always in the same order; a field is filled, or marked missing (and whether policy requires it). */
export function renderEvidence(
  model: ReviewModel,
  openSections: ReadonlySet<string>,
  onToggle: (key: string, open: boolean) => void,
): HTMLElement {
  const evidence: EvidenceView = model.evidence;
  return h(
    'section',
    { class: 'evidence', attrs: { 'aria-label': 'Evidence' } },
    evidence.message
      ? h(
          'p',
          { class: `notice ${evidence.state === 'invalid' ? 'error' : 'warning'}`, attrs: { role: 'note' } },
          icon(evidence.state === 'invalid' ? 'error' : 'warning'),
          ` ${evidence.message}`,
        )
      : null,
    ...EVIDENCE_SECTION_ORDER.map((key) => {
      const field = evidence.fields[key];
      const requiredMissing = field.state === 'missing' && field.required;
      return h(
        'section',
        {
          class: `evidence-section${requiredMissing ? ' required-missing' : ''}`,
          id: `ev-${key}`,
          attrs: { 'aria-labelledby': `ev-${key}-h` },
        },
        h('h3', { id: `ev-${key}-h`, text: EVIDENCE_SECTION_TITLES[key] }),
        ...body(key, model, openSections, onToggle),
      );
    }),
  );
}
