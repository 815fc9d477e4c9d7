import { TRANSCRIPT_PARSERS, type TranscriptFormat } from '../../core/draft/agentPresets';
import { type AgentTranscript, AgentTranscriptSchema } from '../../core/draft/agentTranscript';
import { type SecretPattern, redactValue } from '../../core/redaction';

/**
 * The transcript of one agent run, for the evidence: the agent's (already
 * redacted) standard output read with its format's parser, every string in it
 * redacted again with the run's patterns, and checked against the schema.
 * Undefined when the agent has no format, the format has no parser, or nothing
 * in the output is that format.
 */
export function readTranscriptEvidence(
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

/** The agent's stdout lines, kept up to 20 MB for its transcript (the log has them all). */
export function transcriptCollector(): { push(line: string): void; text(): string } {
  const lines: string[] = [];
  let size = 0;
  return {
    push(line) {
      if (size > 20 * 1024 * 1024) return;
      size += line.length + 1;
      lines.push(line);
    },
    text: () => lines.join('\n'),
  };
}
