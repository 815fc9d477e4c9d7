import type { AgentTranscript } from '../draft/agentTranscript';
import type { AgentReport, Flag, TaskEvidence } from '../evidence';

/**
 * The agent's claims about its own tests, next to the sandbox's proof. An
 * agent says "all tests pass" in its last message or its report, or says it
 * ran `npm test` with exit code 0; the sandbox ran the tests itself. A claim
 * the sandbox's run contradicts is an unbacked claim: flagged, never trusted.
 */
export interface AgentClaim {
  /** Where the agent said it. */
  source: 'finalMessage' | 'summary' | 'command';
  /** The agent's words (one sentence) or the command with its claimed exit code. */
  text: string;
}

export interface ClaimCheck extends AgentClaim {
  /** What the sandbox says: backed (its test tasks passed), contradicted, or not checked (no test task ran). */
  proof: 'backed' | 'contradicted' | 'unchecked';
  /** The tasks the proof rests on, e.g. `unit (npm test): failed`. */
  tasks: string[];
}

/** Commands that run tests, in the ecosystems the summary parsers know. */
const TEST_COMMAND =
  /(?:^|[\s;&|(])(?:npm(?:\s+run)?\s+test|pnpm(?:\s+run)?\s+test|yarn(?:\s+run)?\s+test|node\s+--test|npx\s+(?:jest|vitest|mocha)|jest|vitest|mocha|pytest|python3?\s+-m\s+(?:pytest|unittest)|go\s+test|cargo\s+test|make\s+test|gradle\w*\s+test|mvn\w*\s+test)\b/;
/** "All tests pass", "the tests are green", "tests passed", "test suite passes". */
const PASS_CLAIM =
  /\b(?:tests?|test suite|specs?)\b[^.!?\n]{0,40}?\b(?:pass(?:es|ed|ing)?|succeed(?:s|ed)?|green|are ok|all ok)\b|\b(?:all|every)\s+(?:\w+\s+)?(?:tests?|specs?)\s+(?:now\s+)?pass/i;
const NEGATION =
  /\b(?:not|no|never|cannot|can't|couldn't|didn't|don't|doesn't|isn't|aren't|won't|fail(?:s|ed|ing)?|unable|without running)\b/i;

/** One sentence per claim; a sentence that negates or hedges is not a claim that tests pass. */
function passClaims(text: string | undefined): string[] {
  if (!text) return [];
  const sentences = text.split(/(?<=[.!?])\s+|\n+/);
  return sentences
    .map((sentence) => sentence.trim())
    .filter((sentence) => sentence && PASS_CLAIM.test(sentence) && !NEGATION.test(sentence))
    .map((sentence) => (sentence.length > 300 ? `${sentence.slice(0, 297)}…` : sentence));
}

/** What the agent claims about tests: sentences of its last message and report, and test commands it says passed. */
export function agentClaims(input: { transcript?: AgentTranscript | undefined; report?: AgentReport | undefined }): AgentClaim[] {
  const claims: AgentClaim[] = [];
  const seen = new Set<string>();
  const add = (claim: AgentClaim) => {
    if (seen.has(claim.text)) return;
    seen.add(claim.text);
    claims.push(claim);
  };
  for (const text of passClaims(input.transcript?.finalMessage)) add({ source: 'finalMessage', text });
  for (const text of passClaims(input.report?.summary)) add({ source: 'summary', text });
  for (const command of input.transcript?.commands ?? [])
    if (command.exitCode === 0 && TEST_COMMAND.test(command.command)) add({ source: 'command', text: `${command.command} (exit 0)` });
  return claims.slice(0, 20);
}

/** The tasks that are the sandbox's proof about tests: test-runner tasks (counts or a test command), else every required task. */
function proofTasks(tasks: readonly TaskEvidence[]): TaskEvidence[] {
  const ran = tasks.filter((task) => task.outcome !== 'skipped' && task.outcome !== 'cancelled');
  const tests = ran.filter((task) => task.counts || TEST_COMMAND.test(` ${task.command}`));
  return tests.length ? tests : ran.filter((task) => task.required);
}

/** Each claim with the sandbox's word on it. */
export function checkClaims(claims: readonly AgentClaim[], tasks: readonly TaskEvidence[]): ClaimCheck[] {
  const proof = proofTasks(tasks);
  const failed = proof.filter((task) => task.outcome !== 'passed');
  const describe = (task: TaskEvidence) => `${task.id} (${task.command}): ${task.outcome === 'timedOut' ? 'timed out' : task.outcome}`;
  return claims.map((claim) =>
    !proof.length
      ? { ...claim, proof: 'unchecked', tasks: [] }
      : failed.length
        ? { ...claim, proof: 'contradicted', tasks: failed.map(describe) }
        : { ...claim, proof: 'backed', tasks: proof.map(describe) },
  );
}

/** A flag for each claim the sandbox's run contradicts. */
export function unbackedClaimFlags(checks: readonly ClaimCheck[]): Flag[] {
  return checks
    .filter((check) => check.proof === 'contradicted')
    .map((check) => ({
      kind: 'unbackedClaim' as const,
      detail: `The agent ${check.source === 'command' ? 'says it ran' : 'says'} "${check.text}", but the sandbox's ${check.tasks.join('; ')}: the claim is not backed.`,
    }));
}
