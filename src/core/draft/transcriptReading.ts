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
  command: readonly string[] = [],
): AgentTranscript | undefined {
  const parser = format ? TRANSCRIPT_PARSERS[format as TranscriptFormat] : undefined;
  const read = parser?.(stdout);
  if (!read) return undefined;
  const asked = requestedModel(command);
  const parsed: AgentTranscript = read.model
    ? { ...read, modelFrom: 'transcript' }
    : asked
      ? { ...read, model: asked, modelFrom: 'command' }
      : read;
  const checked = AgentTranscriptSchema.safeParse(redactValue(parsed, patterns).value);
  return checked.success ? checked.data : undefined;
}

/** The model a command line asks for (`--model X`, `--model=X`, `-m X`); undefined when it names none. */
function requestedModel(command: readonly string[]): string | undefined {
  for (let index = 0; index < command.length; index++) {
    const arg = command[index]!;
    if ((arg === '--model' || arg === '-m') && command[index + 1]) return command[index + 1];
    if (arg.startsWith('--model=')) return arg.slice('--model='.length) || undefined;
  }
  return undefined;
}
