import { z } from 'zod';
import { AGENT_ISOLATION_BACKENDS } from './agentIsolation';

/** The setting that lists CLI agents. */
export const AGENTS_SETTING = 'agentLanes.agents';

const AgentConfigSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'an id of letters, digits, ".", "_" or "-" (at most 64)'),
  label: z.string().min(1).max(100),
  command: z.array(z.string()).min(1, 'at least the program to run').max(200),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.string()).optional(),
  timeoutSeconds: z
    .number()
    .int()
    .positive()
    .max(24 * 3600)
    .optional(),
  /** Asks for one boundary; policy (lanes.agent.isolation) must allow it. Default: the first one policy allows that works here. */
  isolation: z.enum(AGENT_ISOLATION_BACKENDS).optional(),
  /** Names of variables whose values come from SecretStorage ("Agent Lanes: Set Agent Secret…"), never from the settings. */
  secrets: z
    .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'))
    .max(50)
    .optional(),
  /** How its standard output reads as a transcript (a TranscriptFormat of agentPresets, set by a preset); kept in the evidence. */
  transcript: z.string().max(64).optional(),
  /** What to do when the program is missing (a preset: its install command and tested version); shown with "not found". */
  install: z.string().max(500).optional(),
  /**
   * Arguments put right after the program, and variables set, only when the run has the lanes' MCP server
   * (`agent-lanes mcp` on the lane channel): how the CLI is told about it. Placeholders as in `command`, plus
   * {mcpServerToml}, {mcpCommandJson} and {mcpEnvJson} (see mcpPlaceholders).
   */
  mcpArgs: z.array(z.string()).max(50).optional(),
  mcpEnv: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.string()).optional(),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** An agent's default time limit, when the setting gives none. */
export const DEFAULT_AGENT_TIMEOUT_SECONDS = 30 * 60;

export interface AgentsSettingResult {
  agents: AgentConfig[];
  /** One clear message per invalid entry (the valid ones are still returned). */
  errors: string[];
}

/** Validates the `agentLanes.agents` setting entry by entry; a bad entry does not hide the good ones. */
export function parseAgentsSetting(value: unknown): AgentsSettingResult {
  if (value === undefined || value === null) return { agents: [], errors: [] };
  if (!Array.isArray(value))
    return {
      agents: [],
      errors: [
        `${AGENTS_SETTING} must be a list of agents, like [{"id": "my-agent", "label": "My agent", "command": ["my-agent", "{promptFile}"]}].`,
      ],
    };
  const agents: AgentConfig[] = [];
  const errors: string[] = [];
  const seen = new Set<string>();
  value.forEach((entry, index) => {
    const parsed = AgentConfigSchema.safeParse(entry);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = [`${AGENTS_SETTING}[${index}]`, ...issue.path.map(String)].join('.');
      errors.push(`${where}: ${issue.message}. Fix the entry in your settings.`);
      return;
    }
    if (seen.has(parsed.data.id)) {
      errors.push(`${AGENTS_SETTING}[${index}].id: "${parsed.data.id}" is used twice; give each agent its own id.`);
      return;
    }
    seen.add(parsed.data.id);
    agents.push(parsed.data);
  });
  return { agents, errors };
}

export interface PlaceholderValues {
  prompt: string;
  promptFile: string;
  worktree: string;
  /** The run's MCP configuration file (`agent-lanes mcp` on the lane channel); empty when there is none. */
  mcpConfig?: string;
  /** The same server as one TOML inline table, `{ command = …, args = […], env = { … } }` (Codex's `-c mcp_servers.<name>=`). */
  mcpServerToml?: string;
  /** The server's command line as a JSON array, program first (OpenCode's `mcp.<name>.command`). */
  mcpCommandJson?: string;
  /** The server's environment as a JSON object. */
  mcpEnvJson?: string;
}

/** The lanes' MCP server as a program to start: what {mcpConfig}'s `mcpServers["agent-lanes"]` holds. */
export interface McpServerEntry {
  command: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
}

/**
 * The MCP server in the shapes CLIs without an `mcpServers` JSON file read.
 * A JSON string is a valid TOML basic string for everything a path or a
 * variable holds (no control characters reach here), so JSON.stringify
 * quotes both.
 */
export function mcpPlaceholders(
  server: McpServerEntry,
): Required<Pick<PlaceholderValues, 'mcpServerToml' | 'mcpCommandJson' | 'mcpEnvJson'>> {
  const tomlEnv = Object.entries(server.env)
    .map(([name, value]) => `${name} = ${JSON.stringify(value)}`)
    .join(', ');
  return {
    mcpServerToml: `{ command = ${JSON.stringify(server.command)}, args = [${server.args.map((arg) => JSON.stringify(arg)).join(', ')}], env = { ${tomlEnv} } }`,
    mcpCommandJson: JSON.stringify([server.command, ...server.args]),
    mcpEnvJson: JSON.stringify(server.env),
  };
}

const PLACEHOLDER = /\{(prompt|promptFile|worktree|mcpConfig|mcpServerToml|mcpCommandJson|mcpEnvJson)\}/g;

/**
 * Substitutes {prompt}, {promptFile}, {worktree}, {mcpConfig} and the other
 * MCP placeholders inside each argument; every argument stays one argument
 * (no shell ever sees them). Other braces are kept.
 */
export function substitutePlaceholders(command: readonly string[], values: PlaceholderValues): string[] {
  return command.map((arg) => substituteOne(arg, values));
}

/** One value with its placeholders substituted (an mcpEnv variable). */
export function substituteOne(text: string, values: PlaceholderValues): string {
  return text.replace(PLACEHOLDER, (_, name: keyof PlaceholderValues) => values[name] ?? '');
}
