import type { AgentPreset } from '../agentPresets';
import type { AgentTranscript, TranscriptParser } from '../agentTranscript';
import { capText, jsonLines, summarizeInput } from './transcriptText';

/**
 * OpenCode's whole configuration, passed in OPENCODE_CONFIG_CONTENT (no file to place):
 * one OpenAI-compatible provider whose base URL, key and model come from the run's
 * environment (`{env:…}` is OpenCode's own substitution), used for the title too so
 * no second provider (and no second host) is ever asked.
 */
const OPENCODE_CONFIG = {
  $schema: 'https://opencode.ai/config.json',
  autoupdate: false,
  share: 'disabled',
  provider: {
    lanes: {
      // Bundled in the binary: nothing is downloaded from npm at run time.
      npm: '@ai-sdk/openai-compatible',
      name: 'OpenAI-compatible API (Agent Lanes)',
      options: { baseURL: '{env:OPENAI_BASE_URL}', apiKey: '{env:OPENAI_API_KEY}' },
      models: { '{env:LANES_OPENCODE_MODEL}': { name: '{env:LANES_OPENCODE_MODEL}', tool_call: true } },
    },
  },
  model: 'lanes/{env:LANES_OPENCODE_MODEL}',
  small_model: 'lanes/{env:LANES_OPENCODE_MODEL}',
};

/**
 * The same configuration with the lanes' MCP server, for a run that has one: a local server whose command
 * line and environment are the MCP placeholders (JSON, put in as text before OpenCode parses it).
 */
const OPENCODE_CONFIG_WITH_MCP = JSON.stringify({
  ...OPENCODE_CONFIG,
  mcp: { 'agent-lanes': { type: 'local', command: '@@command@@', environment: '@@environment@@', enabled: true } },
})
  .replace('"@@command@@"', '{mcpCommandJson}')
  .replace('"@@environment@@"', '{mcpEnvJson}');

/** The preset: what the run against a Chat Completions stand-in in the process boundary established (docs/agents.md). */
export const OPENCODE_PRESET: AgentPreset | undefined = {
  id: 'opencode',
  label: 'OpenCode',
  npmPackage: 'opencode-ai',
  version: '1.18.33',
  // A native binary from the platform package (opencode-ai's own bin is a stub its install script replaces; scripts are not run).
  program: {
    'linux-x64': 'node_modules/opencode-linux-x64/bin/opencode',
    'linux-arm64': 'node_modules/opencode-linux-arm64/bin/opencode',
    'darwin-x64': 'node_modules/opencode-darwin-x64/bin/opencode',
    'darwin-arm64': 'node_modules/opencode-darwin-arm64/bin/opencode',
    'win32-x64': 'node_modules/opencode-windows-x64/bin/opencode.exe',
    'win32-arm64': 'node_modules/opencode-windows-arm64/bin/opencode.exe',
    default: 'node_modules/opencode-linux-x64/bin/opencode',
  },
  // Headless `run`, raw JSON events on stdout, permissions that are not explicitly denied approved (the boundary is the control).
  args: ['run', '--format', 'json', '--auto', '{prompt}'],
  mcpEnv: { OPENCODE_CONFIG_CONTENT: OPENCODE_CONFIG_WITH_MCP },
  apiKeyVar: 'OPENAI_API_KEY',
  baseUrlVar: 'OPENAI_BASE_URL',
  defaultBaseUrl: 'https://api.openai.com/v1',
  hosts: ['api.openai.com:443'],
  env: {
    OPENCODE_CONFIG_CONTENT: JSON.stringify(OPENCODE_CONFIG),
    // The base URL the provider uses unless the agent is pointed elsewhere (presetAgentConfig's baseUrl replaces it).
    OPENAI_BASE_URL: 'https://api.openai.com/v1',
    LANES_OPENCODE_MODEL: 'gpt-5.1',
    // A repository's opencode.json may not swap the provider, its base URL, plugins or MCP servers.
    OPENCODE_DISABLE_PROJECT_CONFIG: 'true',
    OPENCODE_DISABLE_AUTOUPDATE: 'true',
    OPENCODE_DISABLE_MODELS_FETCH: 'true',
    OPENCODE_DISABLE_LSP_DOWNLOAD: 'true',
    OPENCODE_DISABLE_DEFAULT_PLUGINS: 'true',
    OPENCODE_DISABLE_SHARE: 'true',
  },
  permissionMode:
    '--auto: every permission that is not explicitly denied is approved without asking (a headless run has nobody to ask); the isolation boundary, the egress allowlist and the review are the control.',
  transcript: 'opencode-json',
  docsUrl: 'https://opencode.ai/docs/cli/',
};

interface OpenCodeEvent {
  type?: string;
  part?: {
    type?: string;
    text?: string;
    tool?: string;
    state?: { status?: string; input?: unknown; metadata?: { exit?: unknown } };
    tokens?: { input?: number; output?: number; cache?: { read?: number } };
  };
}

const SHELL_TOOLS = new Set(['bash']);

/**
 * Reads `opencode run --format json` (1.18.33): one event per line, `step_start`, `text` (a whole text part),
 * `tool_use` (the finished call with its input, status and, for bash, `metadata.exit`), `step_finish` (tokens of
 * that step, summed here) and `error`. The events do not name the model.
 */
export const OPENCODE_TRANSCRIPT: TranscriptParser | undefined = (output) => {
  const { events, unread } = jsonLines<OpenCodeEvent>(output, (value) => typeof value.type === 'string' && 'part' in value);
  const errors = jsonLines<{ type: string }>(output, (value) => value.type === 'error').events.length;
  if (!events.length) return undefined;
  const toolCalls: AgentTranscript['toolCalls'] = [];
  const commands: AgentTranscript['commands'] = [];
  let inputTokens = 0;
  let outputTokens = 0;
  let cacheReadTokens = 0;
  let steps = 0;
  let finalMessage: string | undefined;
  for (const { type, part } of events) {
    if (!part) continue;
    if (type === 'text' && typeof part.text === 'string' && part.text.trim()) finalMessage = part.text;
    else if (type === 'tool_use' && part.tool) {
      if (toolCalls.length < 500) toolCalls.push({ name: capText(part.tool, 200), input: summarizeInput(part.state?.input) });
      const command = (part.state?.input as { command?: unknown } | undefined)?.command;
      const exit = part.state?.metadata?.exit;
      if (SHELL_TOOLS.has(part.tool) && typeof command === 'string' && commands.length < 500)
        commands.push({ command: capText(command, 1000), exitCode: typeof exit === 'number' && Number.isInteger(exit) ? exit : null });
    } else if (type === 'step_finish' && part.tokens) {
      steps++;
      inputTokens += Math.max(0, Math.trunc(part.tokens.input ?? 0));
      outputTokens += Math.max(0, Math.trunc(part.tokens.output ?? 0));
      cacheReadTokens += Math.max(0, Math.trunc(part.tokens.cache?.read ?? 0));
    }
  }
  return {
    format: 'opencode-json',
    ...(steps ? { usage: { inputTokens, outputTokens, ...(cacheReadTokens ? { cacheReadTokens } : {}) } } : {}),
    toolCalls,
    commands,
    ...(finalMessage ? { finalMessage: capText(finalMessage, 20_000) } : {}),
    // Error events are read (they are the format), but not parts of the transcript.
    unreadLines: Math.max(0, unread - errors),
  };
};
