import type { AgentPreset } from '../agentPresets';
import type { AgentTranscript, TranscriptParser } from '../agentTranscript';
import { capText as cut, isObject, type Json, MAX_COMMAND, MAX_FINAL, MAX_INPUT, MAX_ITEMS, tokenCount as count } from './transcriptText';

/** The model the preset asks for: the newest of Codex 0.171.0's catalog that speaks OpenAI's published Responses API. */
const CODEX_MODEL = 'gpt-5.5';

/**
 * OpenAI Codex CLI, as its end-to-end test ran it (test/unit/agentPresetCodex.test.ts):
 * the native binary from the platform package, `codex exec` with its JSONL
 * events on stdout. Permissions: `--dangerously-bypass-approvals-and-sandbox`
 * — no approval prompts (nobody can answer one in a lane) and no sandbox of
 * Codex's own: its Linux sandbox is a bundled bubblewrap that cannot make a
 * user namespace inside ours ("setting up uid map: Operation not permitted"),
 * and the isolation boundary is the control. The model is pinned because the
 * catalog's newer models speak an internal "responses-lite" request shape that
 * OpenAI's published description does not have; web search (a hosted tool that
 * fetches pages outside the egress allowlist), update checks and analytics are
 * off. Codex ignores HTTPS_PROXY unless `respect_system_proxy` is on, and the
 * boundary's only way out is that proxy; without `unbounded_connection_retries`
 * an unreachable API ends the run instead of waiting forever. Codex reads no
 * variable for its base URL, so `baseUrlArgs` sets it.
 */
export const CODEX_PRESET: AgentPreset | undefined = {
  id: 'codex',
  label: 'OpenAI Codex CLI',
  npmPackage: '@openai/codex',
  version: '0.171.0',
  program: {
    'linux-x64': 'node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex',
    'linux-arm64': 'node_modules/@openai/codex-linux-arm64/vendor/aarch64-unknown-linux-musl/bin/codex',
    'darwin-x64': 'node_modules/@openai/codex-darwin-x64/vendor/x86_64-apple-darwin/bin/codex',
    'darwin-arm64': 'node_modules/@openai/codex-darwin-arm64/vendor/aarch64-apple-darwin/bin/codex',
    'win32-x64': 'node_modules/@openai/codex-win32-x64/vendor/x86_64-pc-windows-msvc/bin/codex.exe',
    'win32-arm64': 'node_modules/@openai/codex-win32-arm64/vendor/aarch64-pc-windows-msvc/bin/codex.exe',
    default: 'node_modules/@openai/codex/bin/codex.js',
  },
  args: [
    'exec',
    '--json',
    '--color',
    'never',
    '--skip-git-repo-check',
    '--dangerously-bypass-approvals-and-sandbox',
    '--model',
    CODEX_MODEL,
    '--enable',
    'respect_system_proxy',
    '--disable',
    'unbounded_connection_retries',
    '-c',
    'web_search="disabled"',
    '-c',
    'check_for_update_on_startup=false',
    '-c',
    'analytics.enabled=false',
    '-c',
    'feedback.enabled=false',
    '--',
    '{prompt}',
  ],
  // Codex reads MCP servers from its config only: one `-c` override adds the lanes' server as a TOML inline table.
  mcpArgs: ['-c', 'mcp_servers.agent-lanes={mcpServerToml}'],
  apiKeyVar: 'CODEX_API_KEY',
  baseUrlVar: 'OPENAI_BASE_URL',
  baseUrlArgs: (baseUrl) => ['-c', `openai_base_url=${JSON.stringify(baseUrl)}`],
  defaultBaseUrl: 'https://api.openai.com/v1',
  hosts: ['api.openai.com:443'],
  env: {},
  permissionMode:
    "--dangerously-bypass-approvals-and-sandbox: no approval prompts (nobody can answer one in a lane) and no sandbox of its own (Codex's bundled bubblewrap cannot nest inside the boundary); the isolation boundary is the control.",
  transcript: 'codex-jsonl',
  docsUrl: 'https://developers.openai.com/codex/cli/reference',
};

/** What a completed item says in one line, for the tool calls. */
function toolCall(item: Json): { name: string; input: string } | undefined {
  switch (item.type) {
    case 'command_execution':
      return { name: 'exec_command', input: cut(`command: ${String(item.command ?? '')}`, MAX_INPUT) };
    case 'file_change': {
      const changes = Array.isArray(item.changes) ? item.changes.filter(isObject) : [];
      return {
        name: 'apply_patch',
        input: cut(changes.map((change) => `${String(change.kind ?? 'update')} ${String(change.path ?? '')}`).join(', '), MAX_INPUT),
      };
    }
    case 'mcp_tool_call':
      return {
        name: `${String(item.server ?? 'mcp')}.${String(item.tool ?? '')}`,
        input: cut(JSON.stringify(item.arguments ?? {}), MAX_INPUT),
      };
    case 'web_search':
      return { name: 'web_search', input: cut(`query: ${String(item.query ?? '')}`, MAX_INPUT) };
    default:
      return undefined;
  }
}

/**
 * Reads `codex exec --json` (one event a line: thread.started, turn.started,
 * item.started / item.updated / item.completed, turn.completed with usage,
 * turn.failed, error) into the common transcript. Only completed items count,
 * so a command is listed once, with its exit code. The model is not in the
 * events; it is read from a `model` field where an event carries one.
 */
export const CODEX_TRANSCRIPT: TranscriptParser | undefined = (output) => {
  const transcript: AgentTranscript = { format: 'codex-jsonl', toolCalls: [], commands: [], unreadLines: 0 };
  let read = 0;
  let input = 0;
  let out = 0;
  let cached = 0;
  let sawUsage = false;
  for (const line of output.split('\n')) {
    if (!line.trim()) continue;
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      transcript.unreadLines++;
      continue;
    }
    if (!isObject(event) || typeof event.type !== 'string') {
      transcript.unreadLines++;
      continue;
    }
    read++;
    if (typeof event.model === 'string') transcript.model = cut(event.model, 200);
    if (event.type === 'turn.completed' && isObject(event.usage)) {
      sawUsage = true;
      input += count(event.usage.input_tokens);
      out += count(event.usage.output_tokens);
      cached += count(event.usage.cached_input_tokens);
    }
    if (event.type === 'turn.failed' && isObject(event.error) && typeof event.error.message === 'string')
      transcript.finalMessage = cut(event.error.message, MAX_FINAL);
    if (event.type !== 'item.completed' || !isObject(event.item)) continue;
    const item = event.item;
    if (item.type === 'agent_message' && typeof item.text === 'string') transcript.finalMessage = cut(item.text, MAX_FINAL);
    const call = toolCall(item);
    if (call && transcript.toolCalls.length < MAX_ITEMS) transcript.toolCalls.push(call);
    if (item.type === 'command_execution' && transcript.commands.length < MAX_ITEMS)
      transcript.commands.push({
        command: cut(String(item.command ?? ''), MAX_COMMAND),
        exitCode: typeof item.exit_code === 'number' && Number.isInteger(item.exit_code) ? item.exit_code : null,
      });
  }
  if (!read) return undefined;
  if (sawUsage) transcript.usage = { inputTokens: input, outputTokens: out, ...(cached ? { cacheReadTokens: cached } : {}) };
  return transcript;
};
