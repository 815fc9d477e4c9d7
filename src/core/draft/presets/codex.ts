import type { AgentPreset } from '../agentPresets';
import type { TranscriptParser } from '../agentTranscript';

/** The codex preset: filled in with what its end-to-end test established. */
export const CODEX_PRESET: AgentPreset | undefined = undefined;

/** Reads the CLI's machine-readable output into the common transcript. */
export const CODEX_TRANSCRIPT: TranscriptParser | undefined = undefined;
