import type { AgentConfig } from './agentConfig';
import type { TranscriptParser } from './agentTranscript';
import { CLAUDE_CODE_PRESET, CLAUDE_CODE_TRANSCRIPT } from './presets/claudeCode';
import { CODEX_PRESET, CODEX_TRANSCRIPT } from './presets/codex';
import { GEMINI_CLI_PRESET, GEMINI_CLI_TRANSCRIPT } from './presets/geminiCli';
import { OPENCODE_PRESET, OPENCODE_TRANSCRIPT } from './presets/openCode';

/**
 * Real coding-agent CLIs the New Draft picker offers without any settings:
 * each pinned to the version its end-to-end test ran with. The boundary
 * (agentIsolation) is the control, so each CLI's own permission prompts are
 * turned off in the least surprising way the CLI offers; the API key comes
 * from SecretStorage and is handed to that agent only.
 */
type AgentPresetId = 'claude-code' | 'codex' | 'gemini-cli' | 'opencode';

/** How a CLI reports what it did, machine-readably, on its standard output. */
export type TranscriptFormat = 'claude-stream-json' | 'codex-jsonl' | 'gemini-stream-json' | 'opencode-json' | 'none';

export interface AgentPreset {
  id: AgentPresetId;
  label: string;
  /** The npm package and the exact version this release was tested with. */
  npmPackage: string;
  version: string;
  /**
   * The program, relative to the install prefix, per `${process.platform}-${process.arch}`;
   * `default` otherwise (usually node_modules/.bin/<bin>). Native CLIs ship the binary in a
   * platform package, which is run directly (install scripts are not run).
   */
  program: Readonly<Record<string, string>> & { default: string };
  /** Arguments after the program; {prompt}, {promptFile} and {worktree} as in agentLanes.agents. */
  args: readonly string[];
  /** The variable that carries the API key (kept in SecretStorage, never in settings). */
  apiKeyVar: string;
  /** The variable that points the CLI at another API base URL (a proxy, a gateway, a test stand-in). */
  baseUrlVar: string;
  /**
   * For a CLI that reads its base URL from its configuration only: the arguments (put right after the
   * program) that set it; then `baseUrlVar` is not set.
   */
  baseUrlArgs?: (baseUrl: string) => readonly string[];
  /** The vendor's default API base URL. */
  defaultBaseUrl: string;
  /** Hosts its network allowlist needs (lanes.agent.network.allow), host:port. */
  hosts: readonly string[];
  /** Fixed variables: no auto-update, no telemetry, config kept in the run's own home. */
  env: Readonly<Record<string, string>>;
  /**
   * How the CLI is told about the lanes' MCP server when the run has one: arguments after the program and
   * variables, with the MCP placeholders of agentConfig (a CLI that reads a settings file takes LANES_MCP_CONFIG).
   */
  mcpArgs?: readonly string[];
  mcpEnv?: Readonly<Record<string, string>>;
  /** How the CLI's own permission prompts are set, in words for the docs and the picker. */
  permissionMode: string;
  transcript: TranscriptFormat;
  /** Where to read about it. */
  docsUrl: string;
}

/** The agent setting a preset stands for, once its CLI is installed at `program`. */
export function presetAgentConfig(preset: AgentPreset, program: string, options: { baseUrl?: string } = {}): AgentConfig {
  return {
    id: preset.id,
    label: `${preset.label} ${preset.version}`,
    command: [program, ...(options.baseUrl && preset.baseUrlArgs ? preset.baseUrlArgs(options.baseUrl) : []), ...preset.args],
    env: { ...preset.env, ...(options.baseUrl && !preset.baseUrlArgs ? { [preset.baseUrlVar]: options.baseUrl } : {}) },
    secrets: [preset.apiKeyVar],
    ...(preset.mcpArgs ? { mcpArgs: [...preset.mcpArgs] } : {}),
    ...(preset.mcpEnv ? { mcpEnv: { ...preset.mcpEnv } } : {}),
    ...(preset.transcript !== 'none' ? { transcript: preset.transcript } : {}),
    install: `${preset.label} ${preset.version} is the version Agent Lanes was tested with; install it with "npm install -g ${preset.npmPackage}@${preset.version}".`,
  };
}

/** The program's path relative to the install prefix on this platform. */
export function presetProgram(preset: AgentPreset, platform: string, arch: string): string {
  return preset.program[`${platform}-${arch}`] ?? preset.program.default;
}

export function findPreset(id: string): AgentPreset | undefined {
  return AGENT_PRESETS.find((preset) => preset.id === id);
}

/** In the order the picker shows them; each file holds what its end-to-end test established. */
export const AGENT_PRESETS: readonly AgentPreset[] = [CLAUDE_CODE_PRESET, CODEX_PRESET, GEMINI_CLI_PRESET, OPENCODE_PRESET].filter(
  (preset): preset is AgentPreset => preset !== undefined,
);

/** The transcript reader of each format. */
export const TRANSCRIPT_PARSERS: Partial<Record<TranscriptFormat, TranscriptParser>> = {
  ...(CLAUDE_CODE_TRANSCRIPT ? { 'claude-stream-json': CLAUDE_CODE_TRANSCRIPT } : {}),
  ...(CODEX_TRANSCRIPT ? { 'codex-jsonl': CODEX_TRANSCRIPT } : {}),
  ...(GEMINI_CLI_TRANSCRIPT ? { 'gemini-stream-json': GEMINI_CLI_TRANSCRIPT } : {}),
  ...(OPENCODE_TRANSCRIPT ? { 'opencode-json': OPENCODE_TRANSCRIPT } : {}),
};
