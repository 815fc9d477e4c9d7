#!/usr/bin/env node
// The `agent-lanes` command line: tools a platform team or an auditor runs
// without VS Code.
const USAGE = `Usage: agent-lanes <command>

Commands:
  audit verify FILE          verify an audit log's hash chain
  audit repair FILE          cut a torn last line and record the repair
  policy validate POLICY     check a policy document against the schema
  policy test POLICY CASES   run a policy test file against a policy
  policy replay CANDIDATE AUDIT... [--format table|json]
                             what recorded decisions would be under a candidate policy
  metrics AUDIT... [--format table|json|csv] [--by agent|repository|taskClass|period]
                             promotion metrics from audit logs
  mcp [--channel PATH]       a stdio MCP server for the agent of one change run
                             (its lane channel: LANES_CHANNEL)
`;

type Out = { log(s: string): void; error(s: string): void };

export async function main(args: string[], out: Out): Promise<number> {
  const [group, ...rest] = args;
  switch (group) {
    case 'audit': {
      const { runAuditCli } = await import('./audit');
      return runAuditCli(rest, out);
    }
    case 'policy': {
      const { runPolicyCli } = await import('./policy');
      return runPolicyCli(rest, out);
    }
    case 'metrics': {
      const { runMetricsCli } = await import('./metrics');
      return runMetricsCli(rest, out);
    }
    case 'mcp': {
      const { runMcpCli } = await import('./mcp');
      return runMcpCli(rest, out);
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      out.log(USAGE);
      return group === undefined ? 2 : 0;
    default:
      out.error(`Unknown command "${group}".\n${USAGE}`);
      return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2), { log: (s) => console.log(s), error: (s) => console.error(s) }).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exit(1);
    },
  );
}
