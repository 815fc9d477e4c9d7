import { readFile } from 'node:fs/promises';
import { auditFileProblem } from './auditFiles';
import { parseArgs } from 'node:util';
import { mergePolicies } from '../core/policy/merge';
import { formatReplayTable } from '../core/policy/replay';
import { parsePolicy, policyJsonSchema } from '../core/policy/schema';
import { formatPolicyTestRun, runPolicyTests } from '../core/policy/testRunner';
import { replayAuditFiles } from '../infra/policy/replayAudit';

export interface CliOutput {
  log(s: string): void;
  error(s: string): void;
}

const USAGE = `Usage:
  agent-lanes policy test POLICY CASES   Run the cases in CASES (YAML) against POLICY (YAML or JSON).
  agent-lanes policy validate POLICY     Check that POLICY is a valid agentlanes.dev/v1 policy.
  agent-lanes policy replay CANDIDATE AUDIT... [--format table|json]
                                         Replay the decisions recorded in audit logs (audit.jsonl) against
                                         CANDIDATE and list those whose effect would change.
  agent-lanes policy schema              Print the JSON Schema of a policy document, for editors:
                                         put "# yaml-language-server: $schema=<file>" at the top of the YAML.

Exit codes: test: 0 all cases pass, 1 a case failed, 2 bad usage or an invalid/unreadable file.
            validate: 0 valid, 1 invalid, 2 bad usage or an unreadable file.
            replay: 0 replayed, 1 a log is broken (replayed up to the break), 2 bad usage,
                    an invalid candidate (nothing replayed) or an unreadable file.
Every field and the values it takes: agent-lanes policy schema.`;

async function readText(path: string, what: string, out: CliOutput): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (error as Error).message;
    out.error(`Cannot read the ${what} ${path}: ${why}.`);
    return undefined;
  }
}

/**
 * `agent-lanes policy ...`. `args` are the words after `agent-lanes` (a
 * leading "policy" is accepted and skipped). Returns the exit code.
 */
export async function runPolicyCli(args: string[], out: CliOutput): Promise<number> {
  const words = args[0] === 'policy' ? args.slice(1) : args;
  const [command, ...rest] = words;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    (command === undefined ? out.error : out.log)(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'test') {
    if (rest.length !== 2) {
      out.error(`agent-lanes policy test needs exactly two files, POLICY and CASES; got ${rest.length}.\n\n${USAGE}`);
      return 2;
    }
    const [policyPath, casesPath] = rest as [string, string];
    const policyText = await readText(policyPath, 'policy', out);
    const casesText = policyText === undefined ? undefined : await readText(casesPath, 'cases file', out);
    if (policyText === undefined || casesText === undefined) return 2;
    const run = runPolicyTests({ text: policyText, source: policyPath }, casesText, casesPath);
    if (!run.ok) {
      for (const error of run.errors) out.error(error);
      out.error('No case was run: fix the file above first.');
      return 2;
    }
    for (const line of formatPolicyTestRun(run, policyPath, casesPath)) out.log(line);
    return run.failed ? 1 : 0;
  }
  if (command === 'schema') {
    if (rest.length) {
      out.error(`agent-lanes policy schema takes no arguments; got ${rest.join(' ')}.\n\n${USAGE}`);
      return 2;
    }
    out.log(JSON.stringify(policyJsonSchema(), null, 2));
    return 0;
  }
  if (command === 'validate') {
    if (rest.length !== 1) {
      out.error(`agent-lanes policy validate needs exactly one file, POLICY; got ${rest.length}.\n\n${USAGE}`);
      return 2;
    }
    const policyPath = rest[0]!;
    const text = await readText(policyPath, 'policy', out);
    if (text === undefined) return 2;
    const parsed = parsePolicy(text, policyPath);
    if (!parsed.ok) {
      for (const error of parsed.errors) out.error(error);
      out.error(`${policyPath} is not a valid policy (${parsed.errors.length} problem${parsed.errors.length === 1 ? '' : 's'}).`);
      return 1;
    }
    const effective = mergePolicies({ level: 'org', document: parsed.policy, source: policyPath });
    const policy = effective.policy;
    const expires = policy.metadata.expiresAt
      ? `expires ${policy.metadata.expiresAt}`
      : 'no expiry (set metadata.expiresAt so a stale cached copy stops being used)';
    const killed = (['disableDrafts', 'disableSandbox', 'disablePullRequests', 'disableActions', 'cancelRunning'] as const).filter(
      (key) => policy.killSwitch[key],
    );
    out.log(`${policyPath}: valid, ${effective.policyRef}, ${expires}`);
    out.log(
      `  ${policy.pathRules.length} path rules, ${policy.lanes.sandbox.requiredTasks.length} required tasks, kill switch ${killed.length ? `ON (${killed.join(', ')})` : 'off'}`,
    );
    out.log(`  sha256 of the effective policy: ${effective.policyHash}`);
    return 0;
  }
  if (command === 'replay') return replay(rest, out);
  out.error(`Unknown policy command "${command}".\n\n${USAGE}`);
  return 2;
}

const REPLAY_FORMATS = ['table', 'json'] as const;

/** `agent-lanes policy replay CANDIDATE AUDIT... [--format table|json]`. */
async function replay(args: string[], out: CliOutput): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { format: { type: 'string', default: 'table' } } });
  } catch (error) {
    out.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const format = parsed.values.format as (typeof REPLAY_FORMATS)[number];
  if (!REPLAY_FORMATS.includes(format)) {
    out.error(`--format must be one of ${REPLAY_FORMATS.join(', ')}; got "${format}".`);
    return 2;
  }
  const [candidatePath, ...logs] = parsed.positionals;
  if (candidatePath === undefined || !logs.length) {
    out.error(`agent-lanes policy replay needs a candidate policy and at least one audit log (audit.jsonl).\n\n${USAGE}`);
    return 2;
  }
  const text = await readText(candidatePath, 'candidate policy', out);
  if (text === undefined) return 2;
  const candidate = parsePolicy(text, candidatePath);
  if (!candidate.ok) {
    for (const error of candidate.errors) out.error(error);
    out.error(
      `${candidatePath} is not a valid policy (${candidate.errors.length} problem${candidate.errors.length === 1 ? '' : 's'}): nothing was replayed.`,
    );
    return 2;
  }
  for (const file of logs) {
    const problem = await auditFileProblem(file);
    if (problem) {
      out.error(problem);
      return 2;
    }
  }
  const effective = mergePolicies({ level: 'org', document: candidate.policy, source: candidatePath });
  const report = await replayAuditFiles(effective, logs);
  for (const warning of report.warnings) out.error(warning);
  if (format === 'json') out.log(JSON.stringify(report, null, 2));
  else for (const line of formatReplayTable(report)) out.log(line);
  return report.warnings.length ? 1 : 0;
}
