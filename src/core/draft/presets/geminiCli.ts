import type { AgentPreset } from '../agentPresets';
import type { TranscriptParser } from '../agentTranscript';

/** The gemini-cli preset: filled in with what its end-to-end test established. */
export const GEMINI_CLI_PRESET: AgentPreset | undefined = undefined;

/** Reads the CLI's machine-readable output into the common transcript. */
export const GEMINI_CLI_TRANSCRIPT: TranscriptParser | undefined = undefined;
