import { z } from 'zod';

/**
 * What a real agent CLI says it did, read from its machine-readable output
 * (Claude Code's stream-json, Codex's --json events, ...). These are the
 * agent's claims, redacted like everything else it hands us; the sandbox's
 * run is the proof they are shown next to.
 */
export const AgentTranscriptSchema = z.object({
  /** Which format was read (a TranscriptFormat of agentPresets). */
  format: z.string(),
  model: z.string().max(200).optional(),
  /**
   * Where `model` comes from: the transcript (what the API answered with), or, for a CLI whose
   * transcript names no model (Codex's --json events), the `--model` its command line asked for.
   */
  modelFrom: z.enum(['transcript', 'command']).optional(),
  usage: z
    .object({
      inputTokens: z.number().int().nonnegative(),
      outputTokens: z.number().int().nonnegative(),
      cacheReadTokens: z.number().int().nonnegative().optional(),
    })
    .optional(),
  /** Each tool the model called, in order: the tool's name and a short, redacted summary of its input. */
  toolCalls: z.array(z.object({ name: z.string().max(200), input: z.string().max(500) })).max(500),
  /** Commands the agent says it ran, with the exit codes it says they had. */
  commands: z.array(z.object({ command: z.string().max(1000), exitCode: z.number().int().nullable() })).max(500),
  /** The agent's last message (redacted, capped). */
  finalMessage: z.string().max(20_000).optional(),
  /** How many lines of the output could not be read as the format (not an error: CLIs print other things too). */
  unreadLines: z.number().int().nonnegative().default(0),
});
export type AgentTranscript = z.infer<typeof AgentTranscriptSchema>;

/** Reads a CLI's whole standard output; undefined when nothing in it is the format. */
export type TranscriptParser = (output: string) => AgentTranscript | undefined;
