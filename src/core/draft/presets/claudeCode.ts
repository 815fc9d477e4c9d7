import type { AgentPreset } from '../agentPresets';
import type { TranscriptParser } from '../agentTranscript';

/** The claude-code preset: filled in with what its end-to-end test established. */
export const CLAUDE_CODE_PRESET: AgentPreset | undefined = undefined;

/** Reads the CLI's machine-readable output into the common transcript. */
export const CLAUDE_CODE_TRANSCRIPT: TranscriptParser | undefined = undefined;
