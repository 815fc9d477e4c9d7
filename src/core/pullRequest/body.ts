import { hashEvidence, type Evidence, type RedactionSummary, type TaskEvidence } from '../evidence';
import { describeAgentBoundary } from '../draft/agentIsolation';
import { BUILTIN_SECRET_PATTERNS, mergeSummaries, redactText, redactValue, type SecretPattern } from '../redaction';
import { riskLevel, type RiskLevel } from './risk';

/**
 * The body of a lane's pull request: a short summary a reviewer reads first,
 * the full evidence in a collapsed section, and the provenance as an in-toto
 * Statement v1 whose subject is the head commit. Everything that comes from
 * the agent or the repository is redacted before it is placed here, and the
 * body stays under GitHub's 65,536-character limit.
 */

/** @internal Exported for its unit tests; the product calls it inside this module. */
export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** @internal Exported for its unit tests; the product calls it inside this module. */
export const PROVENANCE_PREDICATE_TYPE = 'https://agentlanes.dev/provenance/v1';
/** GitHub refuses a longer pull request body. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export const GITHUB_BODY_LIMIT = 65_536;

interface PolicyIdentity {
  id: string;
  version: string;
  hash: string;
}

interface ApprovalIdentity {
  by: string;
  at: string;
  diffHash: string;
  evidenceHash: string;
}

export interface PullRequestBodyInput {
  changeId: string;
  title: string;
  branch: string;
  /** owner/repo, when known: it names the subject. */
  repository?: string;
  headSha: string;
  evidence: Evidence;
  policy: PolicyIdentity;
  /** The audit log's head hash when the pull request is opened. */
  auditHeadHash: string;
  approval: ApprovalIdentity;
  generatedAt: string;
  generator?: { name: string; version: string };
  /** Built-in patterns plus the policy's (compileSecretPatterns). */
  secretPatterns?: readonly SecretPattern[];
  maxLength?: number;
}

interface ProvenancePredicate {
  change: { id: string; branch: string; base: { ref: string; sha: string }; headSha: string };
  /** SHA-256 of the RFC 8785 form of the redacted evidence below, kept even when the evidence is left out for size. */
  evidenceDigest: { sha256: string };
  evidence?: Evidence;
  evidenceOmitted?: string;
  policy: PolicyIdentity;
  audit: { headHash: string };
  approval: ApprovalIdentity;
  generator: { name: string; version: string };
  generatedAt: string;
}

/** @internal Exported for its unit tests; the product calls it inside this module. */
export interface InTotoStatement {
  _type: typeof IN_TOTO_STATEMENT_TYPE;
  subject: Array<{ name: string; digest: { gitCommit: string } }>;
  predicateType: typeof PROVENANCE_PREDICATE_TYPE;
  predicate: ProvenancePredicate;
}

export interface PullRequestBody {
  body: string;
  /** The statement as placed in the body. */
  statement: InTotoStatement;
  /** True when the evidence section was shortened or left out of the predicate. */
  truncated: boolean;
  /** What redaction removed from everything in the body. */
  redaction: RedactionSummary;
  risk: RiskLevel;
}

const MAX_FILE_ROWS = 25;
const MAX_SUMMARY_CHARS = 1_500;

/** The same hash an approval binds (RFC 8785 + SHA-256), over the evidence as placed in the body. */
function evidenceDigest(evidence: Evidence): string {
  return hashEvidence(evidence);
}

/** Plain text on one line that cannot open HTML, links, emphasis or tables, nor notify anyone. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function escapeInline(text: string): string {
  return (
    text
      .replace(/\s+/g, ' ')
      .trim()
      .replace(/[\\`*_{}[\]()#+!|~>]/g, '\\$&')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      // A zero-width space after @ keeps "@org/team" in agent text from pinging anyone.
      .replace(/@/g, '@\u200b')
  );
}

/** A code span that holds any text, backticks included (CommonMark: a longer fence). */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function codeSpan(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ');
  const longest = Math.max(0, ...(oneLine.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = oneLine.startsWith('`') || oneLine.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${oneLine}${pad}${fence}`;
}

/** A fenced block whose fence is longer than any backtick run inside. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function codeBlock(text: string, language = ''): string {
  const longest = Math.max(0, ...(text.match(/`{3,}/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${language}\n${text}\n${fence}`;
}

function shortHash(hash: string): string {
  const bare = hash.replace(/^sha256:/, '');
  return bare.length > 16 ? `${bare.slice(0, 16)}…` : bare;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}

function taskOutcome(task: TaskEvidence): string {
  const counts = task.counts
    ? `${task.counts.passed} passed, ${task.counts.failed} failed${task.counts.skipped ? `, ${task.counts.skipped} skipped` : ''}`
    : '';
  const exit = task.exitCode === null ? '' : `exit ${task.exitCode}`;
  return [task.outcome, counts, exit].filter(Boolean).join(' · ');
}

function failsOnBase(value: boolean | null | undefined): string {
  return value === true ? 'yes (fails on base)' : value === false ? 'no (passes on base too)' : 'not run';
}

function renderSummary(input: PullRequestBodyInput, evidence: Evidence, title: string, risk: RiskLevel, approvedBy: string): string {
  const lines: string[] = [];
  lines.push(`<!-- agent-lanes change=${input.changeId} -->`);
  lines.push(`## Agent change ${codeSpan(input.changeId)}: ${escapeInline(title)}`);
  lines.push('');
  lines.push(
    `Opened by Agent Lanes for agent ${codeSpan(evidence.agent.id + (evidence.agent.version ? `@${evidence.agent.version}` : ''))}, on branch ${codeSpan(input.branch)} from ${codeSpan(evidence.base.ref)} (${codeSpan(evidence.base.sha.slice(0, 12))}). Risk: **${risk}**.`,
  );
  const boundary = describeAgentBoundary(evidence);
  if (boundary) lines.push('', `${boundary.bad ? '⚠️ ' : ''}**Agent boundary:** ${escapeInline(boundary.line)}.`);
  lines.push('');

  lines.push('### What changed');
  if (evidence.prompt.redacted.trim()) lines.push(`Task: ${escapeInline(clip(evidence.prompt.redacted, 300))}`, '');
  const summary = evidence.agentReport?.summary;
  if (summary) lines.push(`> ${escapeInline(clip(summary, MAX_SUMMARY_CHARS))}`, '');
  const diff = evidence.diff;
  if (diff) {
    lines.push(
      `${diff.totals.files} file${diff.totals.files === 1 ? '' : 's'}, +${diff.totals.additions} −${diff.totals.deletions}; diff ${codeSpan(`sha256:${shortHash(diff.hash)}`)}.`,
      '',
    );
    lines.push('| File | Status | + | − |', '| --- | --- | ---: | ---: |');
    for (const file of diff.files.slice(0, MAX_FILE_ROWS)) {
      const name = file.oldPath ? `${codeSpan(file.oldPath)} → ${codeSpan(file.path)}` : codeSpan(file.path);
      lines.push(
        `| ${name.replace(/\|/g, '\\|')} | ${file.status}${file.binary ? ' (binary)' : ''} | ${file.additions} | ${file.deletions} |`,
      );
    }
    if (diff.files.length > MAX_FILE_ROWS) lines.push(`| …and ${diff.files.length - MAX_FILE_ROWS} more (see the evidence) | | | |`);
  } else {
    lines.push('No diff was recorded in the evidence.');
  }
  lines.push('');

  lines.push('### Tests and tasks');
  if (evidence.tasks.length) {
    lines.push('| Task | Result | Fails without the change | Where | Time |', '| --- | --- | --- | --- | ---: |');
    for (const task of evidence.tasks) {
      const where = `${task.isolation}${task.image ? ` ${codeSpan(task.image)}` : ''}, network ${escapeInline(task.networkMode)}`;
      lines.push(
        `| ${codeSpan(task.command).replace(/\|/g, '\\|')}${task.required ? ' (required)' : ''} | ${escapeInline(taskOutcome(task))} | ${failsOnBase(task.failsOnBase)} | ${where.replace(/\|/g, '\\|')} | ${(task.durationMs / 1000).toFixed(1)} s |`,
      );
    }
    if (evidence.baseRun?.testFiles.length) {
      const files = evidence.baseRun.testFiles;
      lines.push(
        '',
        `"Fails without the change": the change's ${files.length === 1 ? 'test file' : `${files.length} test files`} (${files
          .slice(0, 10)
          .map(codeSpan)
          .join(
            ', ',
          )}${files.length > 10 ? `, and ${files.length - 10} more` : ''}) ran against the base commit ${codeSpan(evidence.baseRun.baseSha.slice(0, 12))}.`,
      );
    }
  } else {
    lines.push('No tasks were run.');
  }
  lines.push('');

  lines.push(`### Flags (risk: ${risk})`);
  if (evidence.flags.length) {
    for (const flag of evidence.flags.slice(0, 30))
      lines.push(`- ${codeSpan(flag.kind)}${flag.path ? ` ${codeSpan(flag.path)}` : ''}: ${escapeInline(clip(flag.detail, 300))}`);
    if (evidence.flags.length > 30) lines.push(`- …and ${evidence.flags.length - 30} more (see the evidence)`);
  } else {
    lines.push('None.');
  }
  lines.push('');

  lines.push('### Approval');
  lines.push(
    `Approved by **${escapeInline(approvedBy)}** at ${escapeInline(input.approval.at)} for diff ${codeSpan(`sha256:${shortHash(input.approval.diffHash)}`)} (evidence ${codeSpan(`sha256:${shortHash(input.approval.evidenceHash)}`)}), under policy ${codeSpan(`${input.policy.id}@${input.policy.version}`)} (${codeSpan(`sha256:${shortHash(input.policy.hash)}`)}). Audit log head at opening: ${codeSpan(shortHash(input.auditHeadHash))}.`,
  );
  return lines.join('\n');
}

function details(summary: string, content: string): string {
  return `<details>\n<summary>${summary}</summary>\n\n${content}\n\n</details>`;
}

/** The in-toto Statement v1 for a change: subject the head commit, predicate the evidence and what governed it. */
function buildProvenanceStatement(
  input: Omit<PullRequestBodyInput, 'evidence'> & { evidence: Evidence },
  options: { includeEvidence?: boolean } = {},
): InTotoStatement {
  const includeEvidence = options.includeEvidence ?? true;
  const predicate: ProvenancePredicate = {
    change: {
      id: input.changeId,
      branch: input.branch,
      base: { ref: input.evidence.base.ref, sha: input.evidence.base.sha },
      headSha: input.headSha,
    },
    evidenceDigest: { sha256: evidenceDigest(input.evidence) },
    ...(includeEvidence
      ? { evidence: input.evidence }
      : {
          evidenceOmitted:
            "left out to stay within GitHub's body limit; the evidence section above and the change's local record hold it (see evidenceDigest)",
        }),
    policy: { id: input.policy.id, version: input.policy.version, hash: input.policy.hash },
    audit: { headHash: input.auditHeadHash },
    approval: {
      by: input.approval.by,
      at: input.approval.at,
      diffHash: input.approval.diffHash,
      evidenceHash: input.approval.evidenceHash,
    },
    generator: input.generator ?? { name: 'agent-lanes', version: '0.0.0' },
    generatedAt: input.generatedAt,
  };
  return {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [
      {
        name: input.repository ? `${input.repository}@refs/heads/${input.branch}` : `refs/heads/${input.branch}`,
        digest: { gitCommit: input.headSha },
      },
    ],
    predicateType: PROVENANCE_PREDICATE_TYPE,
    predicate,
  };
}

function checkInput(input: PullRequestBodyInput): void {
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(input.headSha))
    throw new Error(`The head commit must be a full git SHA, got "${input.headSha}".`);
  if (input.evidence.headSha && input.evidence.headSha !== input.headSha) {
    throw new Error(
      `The evidence is for commit ${input.evidence.headSha.slice(0, 12)}, not the head ${input.headSha.slice(0, 12)}; collect evidence for the head commit before opening the pull request.`,
    );
  }
  if (input.evidence.diff && input.evidence.diff.hash !== input.approval.diffHash) {
    throw new Error('The approval no longer matches the diff (the diff hash changed after approval); review and approve the change again.');
  }
  for (const [name, value] of [
    ['policy id', input.policy.id],
    ['policy version', input.policy.version],
    ['policy hash', input.policy.hash],
    ['audit head hash', input.auditHeadHash],
  ] as const) {
    if (!value) throw new Error(`The provenance needs the ${name}; it was empty.`);
  }
}

/** Builds the body, redacted and within the limit; throws when the inputs contradict each other. */
export function buildPullRequestBody(input: PullRequestBodyInput): PullRequestBody {
  checkInput(input);
  const maxLength = input.maxLength ?? GITHUB_BODY_LIMIT;
  const patterns = input.secretPatterns ?? BUILTIN_SECRET_PATTERNS;
  const redactedEvidence = redactValue(input.evidence, patterns);
  const redactedTitle = redactText(input.title, patterns);
  const redactedBy = redactText(input.approval.by, patterns);
  const redaction = mergeSummaries(redactedEvidence.summary, redactedTitle.summary, redactedBy.summary);
  const evidence = redactedEvidence.value;
  const risk = riskLevel(evidence.flags);
  const statementInput = { ...input, title: redactedTitle.text, approval: { ...input.approval, by: redactedBy.text }, evidence };

  const summary = renderSummary(input, evidence, redactedTitle.text, risk, redactedBy.text);
  const evidenceJson = JSON.stringify(evidence, null, 2);
  const evidenceSection = (json: string, note = '') => details('Evidence (JSON)', `${note}${codeBlock(json, 'json')}`);
  const provenanceSection = (statement: InTotoStatement) =>
    details(
      'Provenance: in-toto Statement v1',
      `Subject: head commit ${codeSpan(input.headSha)}. Predicate type ${codeSpan(PROVENANCE_PREDICATE_TYPE)}.\n\n${codeBlock(JSON.stringify(statement, null, 2), 'json')}`,
    );
  const join = (...parts: string[]) => parts.join('\n\n') + '\n';

  let statement = buildProvenanceStatement(statementInput, { includeEvidence: true });
  let body = join(summary, evidenceSection(evidenceJson), provenanceSection(statement));
  if (body.length <= maxLength) return { body, statement, truncated: false, redaction, risk };

  // First leave the second copy of the evidence out of the predicate; its digest stays.
  statement = buildProvenanceStatement(statementInput, { includeEvidence: false });
  const provenance = provenanceSection(statement);
  body = join(summary, evidenceSection(evidenceJson), provenance);
  if (body.length <= maxLength) return { body, statement, truncated: true, redaction, risk };

  // Then shorten the evidence section, never the provenance.
  const digest = statement.predicate.evidenceDigest.sha256;
  const noteFor = (shown: number) =>
    `**Truncated to fit GitHub's ${maxLength.toLocaleString('en-US')}-character limit:** the first ${shown.toLocaleString('en-US')} of ${evidenceJson.length.toLocaleString('en-US')} characters are shown. The full evidence (sha256 ${codeSpan(digest)}) is kept in the change's local record.\n\n`;
  const fixed = join(summary, evidenceSection('', noteFor(evidenceJson.length)), provenance).length;
  let room = maxLength - fixed - 1;
  let summaryText = summary;
  if (room < 200) {
    // The summary itself is too long (a very large change): keep what fits of it.
    summaryText = `${summary.slice(0, Math.max(0, summary.length + room - 200)).replace(/\n[^\n]*$/, '')}\n\n…(summary shortened)`;
    room = maxLength - join(summaryText, evidenceSection('', noteFor(evidenceJson.length)), provenance).length - 1;
  }
  const cut = evidenceJson.lastIndexOf('\n', Math.max(0, room));
  const shown = cut > 0 ? evidenceJson.slice(0, cut) : '';
  body = join(summaryText, evidenceSection(`${shown}\n…`, noteFor(shown.length)), provenance);
  if (body.length > maxLength)
    throw new Error(
      `The pull request body cannot fit in ${maxLength} characters even without the evidence; raise the limit or shorten the change's title.`,
    );
  return { body, statement, truncated: true, redaction, risk };
}
