import { type SecretPattern, redactValue } from '../redaction';
import { TRANSCRIPT_PARSERS, type TranscriptFormat } from './agentPresets';
import { type AgentTranscript, AgentTranscriptSchema } from './agentTranscript';

/**
 * The transcript of one agent run, for the evidence: the agent's (already
 * redacted) standard output read with its format's parser, then every string
 * in it redacted again with the run's patterns, as the agent's report is.
 * Undefined when the agent has no format, the format has no parser, or
 * nothing in the output is that format.
 */
export function readAgentTranscript(
  format: string | undefined,
  stdout: string,
  patterns: readonly SecretPattern[],
): AgentTranscript | undefined {
  const parser = format ? TRANSCRIPT_PARSERS[format as TranscriptFormat] : undefined;
  const parsed = parser?.(stdout);
  if (!parsed) return undefined;
  const checked = AgentTranscriptSchema.safeParse(redactValue(parsed, patterns).value);
  return checked.success ? checked.data : undefined;
}
