import { z } from 'zod';
import { EFFECTS, type DecisionRecord, type Effect } from '../decision';
import { EVIDENCE_FIELDS, FILE_STATUSES, FLAG_KINDS } from '../evidence';
import { POLICY_ACTIONS, evaluate, type ChangeFacts, type PolicyAction } from './evaluate';
import { mergePolicies, type EffectivePolicy, type PolicyLayer } from './merge';
import { describeIssues, parseOverlayObject, parsePolicy, readYaml } from './schema';

const FileInput = z.union(
  [
    z
      .string()
      .min(1)
      .transform((path) => ({ path, additions: 1, deletions: 0 })),
    z.strictObject({
      path: z.string().min(1),
      oldPath: z.string().min(1).optional(),
      status: z.enum(FILE_STATUSES).optional(),
      additions: z.number().int().nonnegative().default(1),
      deletions: z.number().int().nonnegative().default(0),
      binary: z.boolean().optional(),
    }),
  ],
  { error: 'expected a path, or { path, additions?, deletions?, oldPath?, status?, binary? }' },
);

const FactsInput = z.strictObject({
  changeId: z.string().optional(),
  agentId: z.string().optional(),
  files: z.array(FileInput).default([]),
  flags: z.array(z.strictObject({ kind: z.enum(FLAG_KINDS), path: z.string().optional(), detail: z.string().optional() })).default([]),
  tasks: z
    .array(
      z.strictObject({
        id: z.string().min(1),
        outcome: z.enum(['passed', 'failed', 'timedOut', 'cancelled', 'error', 'skipped']).default('passed'),
        required: z.boolean().optional(),
        isolation: z.enum(['container', 'process']).optional(),
        networkMode: z.string().optional(),
      }),
    )
    .default([]),
  evidence: z
    .union([z.literal('all'), z.array(z.enum(EVIDENCE_FIELDS))], { error: 'expected "all" or a list of evidence fields' })
    .default('all'),
  approvals: z.array(z.strictObject({ by: z.string().min(1), isAuthor: z.boolean().optional() })).default([]),
  baseBranch: z.string().optional(),
  author: z.string().optional(),
  isolation: z.enum(['container', 'process']).optional(),
  pullRequestDraft: z.boolean().optional(),
  /** Rollout modes: the chosen task class, the task text (class words) and owner/repo. */
  taskClass: z.string().optional(),
  task: z.string().optional(),
  repository: z.string().optional(),
});

const datetime = z.iso.datetime({ offset: true, error: 'expected an ISO 8601 date-time with a time zone, such as "2026-12-31T00:00:00Z"' });

const ReasonSchema = z
  .string()
  .min(1)
  .superRefine((reason, ctx) => {
    const problem = reasonMatcher(reason).problem;
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: reason });
  });

const CaseSchema = z.strictObject({
  name: z.string().min(1),
  action: z.enum(POLICY_ACTIONS),
  facts: FactsInput.default(FactsInput.parse({})),
  now: datetime.optional(),
  expect: z.strictObject({ effect: z.enum(EFFECTS), reason: ReasonSchema.optional() }),
});

const CasesFileSchema = z.strictObject({
  /** The time every case is decided at, unless a case says otherwise (expiry depends on it). */
  now: datetime.optional(),
  /** Overlays merged over the policy under test, as a repository or user would add them. */
  repository: z.unknown().optional(),
  user: z.unknown().optional(),
  cases: z.array(CaseSchema).min(1),
});

interface CaseResult {
  name: string;
  passed: boolean;
  expected: { effect: Effect; reason?: string };
  decision: DecisionRecord;
  /** Why the case failed, one line per problem. */
  problems: string[];
}

export type PolicyTestRun =
  { ok: true; policyRef: string; results: CaseResult[]; passed: number; failed: number } | { ok: false; errors: string[] };

/** "/regex/flags" is a regular expression; anything else is a substring. */
function reasonMatcher(reason: string): { test: (text: string) => boolean; problem?: string } {
  const regex = /^\/(.+)\/([a-z]*)$/s.exec(reason);
  if (!regex) return { test: (text) => text.includes(reason) };
  try {
    const compiled = new RegExp(regex[1]!, regex[2]);
    return { test: (text) => compiled.test(text) };
  } catch (error) {
    return { test: () => false, problem: `${(error as Error).message}; write a substring, or a valid /regular expression/` };
  }
}

function toFacts(input: z.output<typeof FactsInput>): ChangeFacts {
  const { evidence, ...rest } = input;
  return { ...rest, evidence: evidence === 'all' ? [...EVIDENCE_FIELDS] : evidence };
}

/** The text a case's expected reason is matched against: the explanation and every matched rule. */
function decisionText(decision: DecisionRecord): string {
  return [decision.explanation, ...decision.matchedRules.map((rule) => `${rule.rule}: ${rule.reason ?? ''}`)].join('\n');
}

/**
 * Runs a case file against a policy: the policy as the org level, with the
 * file's optional `repository:` and `user:` overlays merged below it.
 */
export function runPolicyTests(policy: { text: string; source: string }, casesText: string, casesSource: string): PolicyTestRun {
  const parsedPolicy = parsePolicy(policy.text, policy.source);
  if (!parsedPolicy.ok) return { ok: false, errors: parsedPolicy.errors };
  const read = readYaml(casesText, casesSource);
  if (!read.ok) return read;
  if (read.value === null || read.value === undefined)
    return { ok: false, errors: [`${casesSource}: the file is empty; it needs "cases:" with at least one case.`] };
  const parsed = CasesFileSchema.safeParse(read.value, { reportInput: true });
  if (!parsed.success) return { ok: false, errors: describeIssues(parsed.error.issues, CasesFileSchema, casesSource, read.locate) };
  const file = parsed.data;

  const overlays: PolicyLayer[] = [];
  const errors: string[] = [];
  for (const level of ['repository', 'user'] as const) {
    if (file[level] === undefined) continue;
    const result = parseOverlayObject(file[level], `${casesSource} (${level})`, {
      id: level === 'user' ? 'user-settings' : 'repository',
      version: 'test',
    });
    if (result.ok) overlays.push({ level, document: result.policy });
    else errors.push(...result.errors);
  }
  if (errors.length) return { ok: false, errors };
  const effective = mergePolicies({ level: 'org', document: parsedPolicy.policy, source: policy.source }, overlays);
  return runCases(effective, file);
}

function runCases(effective: EffectivePolicy, file: z.output<typeof CasesFileSchema>): PolicyTestRun {
  const defaultNow = file.now ? new Date(file.now) : new Date();
  const results = file.cases.map((testCase): CaseResult => {
    const now = testCase.now ? new Date(testCase.now) : defaultNow;
    const decision = evaluate(effective, toFacts(testCase.facts), testCase.action as PolicyAction, now);
    const problems: string[] = [];
    if (decision.effect !== testCase.expect.effect) problems.push(`expected effect ${testCase.expect.effect}, got ${decision.effect}`);
    if (testCase.expect.reason !== undefined && !reasonMatcher(testCase.expect.reason).test(decisionText(decision))) {
      problems.push(`expected the reason to ${testCase.expect.reason.startsWith('/') ? 'match' : 'contain'} ${testCase.expect.reason}`);
    }
    return { name: testCase.name, passed: problems.length === 0, expected: testCase.expect, decision, problems };
  });
  const passed = results.filter((result) => result.passed).length;
  return { ok: true, policyRef: effective.policyRef, results, passed, failed: results.length - passed };
}

/** The report of a run, one line per string: what `agent-lanes policy test` prints and "Agent Lanes: Test Policy" shows. */
export function formatPolicyTestRun(run: Extract<PolicyTestRun, { ok: true }>, policySource: string, casesSource: string): string[] {
  const lines = [
    `Testing ${run.policyRef} (${policySource}) with ${run.results.length} case${run.results.length === 1 ? '' : 's'} from ${casesSource}`,
  ];
  for (const result of run.results) {
    if (result.passed) {
      lines.push(`  ✓ ${result.name}`);
      continue;
    }
    lines.push(`  ✗ ${result.name}`);
    for (const problem of result.problems) lines.push(`      ${problem}`);
    lines.push(`      decision: ${result.decision.effect}: ${result.decision.explanation}`);
    for (const rule of result.decision.matchedRules)
      lines.push(`        - [${rule.effect}] ${rule.policy} ${rule.rule}: ${rule.reason ?? ''}`);
  }
  lines.push(`${run.passed} passed, ${run.failed} failed`);
  return lines;
}
