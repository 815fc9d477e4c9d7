import type { AgentPreset } from '../agentPresets';
import type { AgentTranscript, TranscriptParser } from '../agentTranscript';
import { capText, jsonLines, summarizeInput } from './transcriptText';

/**
 * Gemini CLI reads everything we need to fix (the auth type, usage statistics,
 * auto-update) from settings files only, and 0.61.0 refuses a custom
 * GOOGLE_GEMINI_BASE_URL in headless mode unless `security.auth.selectedType`
 * is set (the variable alone makes it pick the "gateway" auth type, which its
 * non-interactive check rejects as "Invalid auth method selected."). So Node
 * first runs this small module (NODE_OPTIONS --import, a data: URL): it gives
 * the CLI a fresh settings home under the run's temp folder (private to the
 * boundary; a real home folder is never written, whatever the backend),
 * writes the settings there, and drops NODE_OPTIONS so nothing the agent
 * starts runs it again.
 */
const GEMINI_SETTINGS = {
  security: { auth: { selectedType: 'gemini-api-key' } },
  privacy: { usageStatisticsEnabled: false },
  telemetry: { enabled: false },
  general: { enableAutoUpdate: false, enableAutoUpdateNotification: false },
};
const GEMINI_PRELUDE = [
  "import{mkdirSync,mkdtempSync,writeFileSync,existsSync,readFileSync}from'node:fs';",
  "import{join}from'node:path';",
  "import{tmpdir}from'node:os';",
  "const h=process.env.GEMINI_CLI_HOME||(process.env.GEMINI_CLI_HOME=mkdtempSync(join(tmpdir(),'lanes-gemini-home-')));",
  "const d=join(h,'.gemini'),f=join(d,'settings.json');",
  // The lanes' MCP server, when the run has one: LANES_MCP_CONFIG's mcpServers, the shape Gemini's settings take.
  `const s=${JSON.stringify(GEMINI_SETTINGS)};`,
  "try{const m=process.env.LANES_MCP_CONFIG&&JSON.parse(readFileSync(process.env.LANES_MCP_CONFIG,'utf8')).mcpServers;if(m)s.mcpServers=m}catch{}",
  'if(!existsSync(f)){mkdirSync(d,{recursive:true});writeFileSync(f,JSON.stringify(s))}',
  'delete process.env.NODE_OPTIONS;',
].join('');

/** The preset: what the run against a Gemini API stand-in in the process boundary established (docs/agents.md). */
export const GEMINI_CLI_PRESET: AgentPreset | undefined = {
  id: 'gemini-cli',
  label: 'Gemini CLI',
  npmPackage: '@google/gemini-cli',
  version: '0.61.0',
  // One bundled Node program (it needs `node` on PATH); its optional native modules (node-pty, keytar) are not needed headless.
  program: { default: 'node_modules/@google/gemini-cli/bundle/gemini.js' },
  // Headless (-p), every tool call approved (the boundary is the control), the workspace trusted for this run
  // (headless mode refuses an untrusted folder), and one JSON event per line.
  args: ['--prompt', '{prompt}', '--approval-mode', 'yolo', '--skip-trust', '--output-format', 'stream-json'],
  apiKeyVar: 'GEMINI_API_KEY',
  baseUrlVar: 'GOOGLE_GEMINI_BASE_URL',
  defaultBaseUrl: 'https://generativelanguage.googleapis.com',
  hosts: ['generativelanguage.googleapis.com:443'],
  env: {
    NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(GEMINI_PRELUDE)}`,
    // No second Node process with a heap sized at half the machine's memory (the boundary measures memory).
    GEMINI_CLI_NO_RELAUNCH: 'true',
    GEMINI_TELEMETRY_ENABLED: 'false',
    NO_BROWSER: 'true',
  },
  permissionMode:
    '--approval-mode yolo: every tool call is approved without asking (there is nobody to ask in a headless run); the isolation boundary, the egress allowlist and the review are the control. --skip-trust trusts the worktree for this run only.',
  transcript: 'gemini-stream-json',
  docsUrl: 'https://github.com/google-gemini/gemini-cli/blob/main/docs/cli/headless.md',
};

interface GeminiEvent {
  type?: string;
  role?: string;
  content?: string;
  delta?: boolean;
  model?: string;
  tool_name?: string;
  tool_id?: string;
  parameters?: unknown;
  status?: string;
  output?: string;
  error?: { message?: string };
  message?: string;
  stats?: { input_tokens?: number; output_tokens?: number; cached?: number; models?: Record<string, { output_tokens?: number }> };
}

const SHELL_TOOLS = new Set(['run_shell_command', 'ShellTool']);

/**
 * Reads `--output-format stream-json` (0.61.0): `init`, `message` (assistant text comes in deltas),
 * `tool_use` / `tool_result` paired by `tool_id`, `error`, and a last `result` with token counts per model.
 * The shell tool's result says "Command exited with code: N" for a non-zero exit (its status stays `success`);
 * a call that failed to run (`error` status) is reported with exit code null.
 */
export const GEMINI_CLI_TRANSCRIPT: TranscriptParser | undefined = (output) => {
  const { events, unread } = jsonLines<GeminiEvent>(output, (value) => typeof value.type === 'string');
  if (!events.length) return undefined;
  const toolCalls: AgentTranscript['toolCalls'] = [];
  const commands: (AgentTranscript['commands'][number] & { id?: string })[] = [];
  let model: string | undefined;
  let usage: AgentTranscript['usage'];
  let message = '';
  let lastMessage = '';
  for (const event of events) {
    if (event.type === 'init' && event.model && event.model !== 'auto') model = event.model;
    else if (event.type === 'message' && event.role === 'assistant' && typeof event.content === 'string') {
      message = event.delta === false ? event.content : message + event.content;
      lastMessage = message;
    } else if (event.type === 'tool_use' && event.tool_name) {
      message = '';
      if (toolCalls.length < 500) toolCalls.push({ name: capText(event.tool_name, 200), input: summarizeInput(event.parameters) });
      const command = (event.parameters as { command?: unknown } | undefined)?.command;
      if (SHELL_TOOLS.has(event.tool_name) && typeof command === 'string' && commands.length < 500)
        commands.push({ command: capText(command, 1000), exitCode: null, ...(event.tool_id ? { id: event.tool_id } : {}) });
    } else if (event.type === 'tool_result' && event.tool_id) {
      // The shell tool reports a non-zero exit as a success whose output says "Command exited with code: N".
      const command = commands.find((entry) => entry.id === event.tool_id);
      if (command && event.status === 'success') {
        const exited = /Command exited with code: (\d+)/.exec(event.output ?? '');
        command.exitCode = exited ? Number(exited[1]) : 0;
      }
    } else if (event.type === 'result' && event.stats) {
      const { input_tokens: inputTokens, output_tokens: outputTokens, cached, models } = event.stats;
      if (typeof inputTokens === 'number' && typeof outputTokens === 'number')
        usage = { inputTokens, outputTokens, ...(typeof cached === 'number' && cached > 0 ? { cacheReadTokens: cached } : {}) };
      // The model that wrote most of the answer (auto routing may use a smaller one on the side).
      const main = Object.entries(models ?? {}).sort(([, a], [, b]) => (b.output_tokens ?? 0) - (a.output_tokens ?? 0))[0];
      if (main) model = main[0];
    }
  }
  return {
    format: 'gemini-stream-json',
    ...(model ? { model: capText(model, 200) } : {}),
    ...(usage ? { usage } : {}),
    toolCalls,
    commands: commands.map(({ command, exitCode }) => ({ command, exitCode })),
    ...(lastMessage ? { finalMessage: capText(lastMessage, 20_000) } : {}),
    unreadLines: unread,
  };
};
