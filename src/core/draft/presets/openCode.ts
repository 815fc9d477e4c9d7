import type { AgentPreset } from '../agentPresets';
import type { TranscriptParser } from '../agentTranscript';

/** The opencode preset: filled in with what its end-to-end test established. */
export const OPENCODE_PRESET: AgentPreset | undefined = undefined;

/** Reads the CLI's machine-readable output into the common transcript. */
export const OPENCODE_TRANSCRIPT: TranscriptParser | undefined = undefined;
