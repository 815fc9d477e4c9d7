// `agent-lanes mcp`: a stdio MCP server for the agent working on one change.
// It holds no power of its own: every tool call is forwarded to the run's lane
// channel (a Unix socket the Draft lane opens for that change and that run
// only), where the lanes decide it with policy and audit it.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import { LANE_TOOL_DESCRIPTIONS, type LaneChannelMethod } from '../core/draft/laneChannel';
import { AgentReportSchema } from '../core/evidence';
import { callLaneChannel } from '../infra/draft/laneChannel';

const MCP_USAGE = `Usage: agent-lanes mcp [--channel PATH]

A stdio MCP server for the agent working on one change. Its tools act through
the lane channel of the agent's run: --channel, else the environment variable
LANES_CHANNEL (set by Agent Lanes for every agent run). The change is
LANES_CHANGE_ID unless a call names one.
`;

type Out = { log(s: string): void; error(s: string): void };

const changeIdArg = z
  .string()
  .max(64)
  .optional()
  .describe('The change this call is for; default the change of your run (LANES_CHANGE_ID). A channel acts on its own change only.');

const SERVER_VERSION = '0.1.0';

/** The MCP server; the caller connects it to a transport. */
function createLanesMcpServer(settings: { channel: string | undefined; changeId: string | undefined }): McpServer {
  const server = new McpServer({ name: 'agent-lanes', version: SERVER_VERSION });
  const call = async (tool: LaneChannelMethod, args: { changeId?: string | undefined }, params: Record<string, unknown> = {}) => {
    const changeId = args.changeId ?? settings.changeId;
    const fail = (text: string) => ({ content: [{ type: 'text' as const, text }], isError: true });
    if (!settings.channel)
      return fail(
        'No lane channel: LANES_CHANNEL is not set and --channel was not given. `agent-lanes mcp` works only inside an agent run that Agent Lanes started (it sets LANES_CHANNEL).',
      );
    if (!changeId) return fail('No change: LANES_CHANGE_ID is not set; pass changeId.');
    try {
      const result = await callLaneChannel(settings.channel, tool, { ...params, changeId });
      return { content: [{ type: 'text' as const, text: JSON.stringify(result, null, 2) }] };
    } catch (error) {
      return fail((error as Error).message);
    }
  };
  const describe = (tool: LaneChannelMethod) => LANE_TOOL_DESCRIPTIONS[tool];
  server.registerTool('lanes_get_task', { ...describe('lanes_get_task'), inputSchema: { changeId: changeIdArg } }, (args) =>
    call('lanes_get_task', args),
  );
  server.registerTool('lanes_run_tasks', { ...describe('lanes_run_tasks'), inputSchema: { changeId: changeIdArg } }, (args) =>
    call('lanes_run_tasks', args),
  );
  server.registerTool(
    'lanes_report_evidence',
    {
      ...describe('lanes_report_evidence'),
      inputSchema: {
        summary: AgentReportSchema.shape.summary.describe('What you changed and why, for the reviewer.'),
        assumptions: AgentReportSchema.shape.assumptions.describe('Assumptions you made.'),
        confidenceLimits: AgentReportSchema.shape.confidenceLimits.describe('What you did not check, or are unsure of.'),
        agentVersion: AgentReportSchema.shape.agentVersion.describe('Your name and version.'),
        changeId: changeIdArg,
      },
    },
    ({ changeId, ...report }) => {
      const fields = Object.fromEntries(Object.entries(report).filter(([, value]) => value !== undefined));
      return call('lanes_report_evidence', { changeId }, { report: fields });
    },
  );
  server.registerTool('lanes_finish_draft', { ...describe('lanes_finish_draft'), inputSchema: { changeId: changeIdArg } }, (args) =>
    call('lanes_finish_draft', args),
  );
  return server;
}

/** `agent-lanes mcp [--channel PATH]`: serves MCP on stdin/stdout until stdin closes. */
export async function runMcpCli(args: string[], out: Out, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let channel = env.LANES_CHANNEL || undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--channel' && args[index + 1]) channel = args[++index];
    else if (arg.startsWith('--channel=')) channel = arg.slice('--channel='.length);
    else if (arg === '-h' || arg === '--help') {
      out.log(MCP_USAGE);
      return 0;
    } else {
      out.error(`Unknown argument "${arg}".\n${MCP_USAGE}`);
      return 2;
    }
  }
  // Said on stderr (never stdout, which is the protocol): the server still starts, and each call says it again.
  if (!channel) out.error('agent-lanes mcp: no lane channel (LANES_CHANNEL or --channel); every tool call will fail until one is given.');
  const server = createLanesMcpServer({ channel, changeId: env.LANES_CHANGE_ID || undefined });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
  });
  await server.connect(transport);
  await closed;
  await server.close();
  return 0;
}
