import type { AgentPreset } from '../agentPresets';
import type { AgentTranscript, TranscriptParser } from '../agentTranscript';
import { capText as cut, isObject, MAX_COMMAND, MAX_FINAL, MAX_INPUT, MAX_ITEMS, tokenCount as count } from './transcriptText';

/**
 * Claude Code, as its end-to-end test ran it (test/unit/agentPresetClaudeCode.test.ts):
 * the native CLI from its platform package, in print mode with the stream-json
 * transcript on stdout. Permissions: `bypassPermissions` — every tool call is
 * accepted without a prompt, because nobody can answer one in a lane and the
 * boundary is the control (read-only file system but the worktree, no home,
 * egress only to the allowlist). The CLI refuses that mode as root unless
 * IS_SANDBOX=1 says it is in a sandbox; the boundary is one, so the preset says so.
 * Non-essential traffic (auto-update, telemetry, error reporting, feedback) is
 * off, so the model API is the only host it needs.
 */
export const CLAUDE_CODE_PRESET: AgentPreset | undefined = {
  id: 'claude-code',
  label: 'Claude Code',
  npmPackage: '@anthropic-ai/claude-code',
  version: '2.1.332',
  program: {
    'linux-x64': 'node_modules/@anthropic-ai/claude-code-linux-x64/claude',
    'linux-arm64': 'node_modules/@anthropic-ai/claude-code-linux-arm64/claude',
    'darwin-x64': 'node_modules/@anthropic-ai/claude-code-darwin-x64/claude',
    'darwin-arm64': 'node_modules/@anthropic-ai/claude-code-darwin-arm64/claude',
    'win32-x64': 'node_modules/@anthropic-ai/claude-code-win32-x64/claude.exe',
    'win32-arm64': 'node_modules/@anthropic-ai/claude-code-win32-arm64/claude.exe',
    default: 'node_modules/@anthropic-ai/claude-code/bin/claude.exe',
  },
  args: ['-p', '{prompt}', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'bypassPermissions'],
  // The run's MCP configuration and no other: a user's or project's .mcp.json servers would run inside the boundary unreviewed.
  mcpArgs: ['--mcp-config', '{mcpConfig}', '--strict-mcp-config'],
  apiKeyVar: 'ANTHROPIC_API_KEY',
  baseUrlVar: 'ANTHROPIC_BASE_URL',
  defaultBaseUrl: 'https://api.anthropic.com',
  hosts: ['api.anthropic.com:443'],
  env: {
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    DISABLE_BUG_COMMAND: '1',
    CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY: '1',
    IS_SANDBOX: '1',
  },
  permissionMode:
    'bypassPermissions: every tool call runs without a prompt (nobody can answer one in a lane); the isolation boundary is the control. IS_SANDBOX=1 lets the CLI accept that mode as root inside the boundary.',
  transcript: 'claude-stream-json',
  docsUrl: 'https://docs.anthropic.com/en/docs/claude-code/cli-reference',
};

/** What a tool's input says in one line: the path or the command where it has one, else its JSON. */
function summariseInput(name: string, input: unknown): string {
  if (!isObject(input)) return '';
  for (const key of ['command', 'file_path', 'path', 'pattern', 'url', 'description'])
    if (typeof input[key] === 'string') return cut(`${key}: ${input[key] as string}`, MAX_INPUT);
  return cut(`${name} ${JSON.stringify(input)}`, MAX_INPUT);
}

/** The text of a tool_result's content (a string or text blocks). */
function resultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((block) => (isObject(block) && typeof block.text === 'string' ? block.text : '')).join('\n');
  return '';
}

/**
 * Reads Claude Code's `--output-format stream-json --verbose` output: one JSON
 * object a line — `system` (init: the model), `assistant` (the model's
 * messages: text and tool_use blocks), `user` (tool results: a Bash result
 * with `is_error` starts "Exit code N"), and the closing `result` (usage,
 * the final answer). Other lines are counted, not read.
 */
export const CLAUDE_CODE_TRANSCRIPT: TranscriptParser | undefined = (output: string): AgentTranscript | undefined => {
  let read = 0;
  let unread = 0;
  let model: string | undefined;
  let usage: AgentTranscript['usage'];
  let finalMessage: string | undefined;
  let lastText: string | undefined;
  const toolCalls: AgentTranscript['toolCalls'] = [];
  const commands: AgentTranscript['commands'] = [];
  // Bash calls by tool_use id, waiting for their result.
  const pending = new Map<string, number>();
  for (const line of output.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    let event: unknown;
    try {
      event = JSON.parse(trimmed);
    } catch {
      unread++;
      continue;
    }
    if (!isObject(event) || typeof event.type !== 'string') {
      unread++;
      continue;
    }
    read++;
    if (event.type === 'system' && typeof event.model === 'string') model = event.model;
    else if (event.type === 'assistant' && isObject(event.message)) {
      const message = event.message;
      if (typeof message.model === 'string') model = message.model;
      for (const block of Array.isArray(message.content) ? message.content : []) {
        if (!isObject(block)) continue;
        if (block.type === 'text' && typeof block.text === 'string' && block.text.trim()) lastText = block.text;
        if (block.type !== 'tool_use' || typeof block.name !== 'string') continue;
        if (toolCalls.length < MAX_ITEMS) toolCalls.push({ name: cut(block.name, 200), input: summariseInput(block.name, block.input) });
        if (block.name === 'Bash' && isObject(block.input) && typeof block.input.command === 'string' && commands.length < MAX_ITEMS) {
          commands.push({ command: cut(block.input.command, MAX_COMMAND), exitCode: null });
          if (typeof block.id === 'string') pending.set(block.id, commands.length - 1);
        }
      }
    } else if (event.type === 'user' && isObject(event.message) && Array.isArray(event.message.content)) {
      for (const block of event.message.content) {
        if (!isObject(block) || block.type !== 'tool_result' || typeof block.tool_use_id !== 'string') continue;
        const index = pending.get(block.tool_use_id);
        if (index === undefined) continue;
        pending.delete(block.tool_use_id);
        const code = /^Exit code (\d+)/.exec(resultText(block.content).trim());
        // A failed command says its code; a result without is_error is a command that exited 0.
        commands[index]!.exitCode = block.is_error === true ? (code ? Number(code[1]) : null) : 0;
      }
    } else if (event.type === 'result') {
      if (typeof event.result === 'string') finalMessage = event.result;
      if (isObject(event.usage))
        usage = {
          inputTokens: count(event.usage.input_tokens) + count(event.usage.cache_creation_input_tokens),
          outputTokens: count(event.usage.output_tokens),
          cacheReadTokens: count(event.usage.cache_read_input_tokens),
        };
    }
  }
  if (read === 0) return undefined;
  const final = finalMessage ?? lastText;
  return {
    format: 'claude-stream-json',
    ...(model ? { model: cut(model, 200) } : {}),
    ...(usage ? { usage } : {}),
    toolCalls,
    commands,
    ...(final !== undefined ? { finalMessage: cut(final, MAX_FINAL) } : {}),
    unreadLines: unread,
  };
};
