// dist/mcp.js: `agent-lanes mcp` on its own, small enough to ship in the VSIX
// (the whole command line is not). An agent's CLI starts it inside the
// agent's boundary; see mcpServerCommand in src/infra/draft/boundary/agentBoundary.ts.
import { runMcpCli } from './mcp';

runMcpCli(process.argv.slice(2), { log: (s) => console.log(s), error: (s) => console.error(s) }).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  },
);
