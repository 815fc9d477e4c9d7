/**
 * Runs inside the boundary as `node -e EGRESS_LAUNCHER_SOURCE <socket> <agent> <args…>`
 * (Node built-ins only): listens on 127.0.0.1 in the boundary's own network
 * namespace, pipes each connection to the egress proxy's Unix socket, and
 * starts the agent with the proxy variables set. The agent starts only once
 * the bridge listens; its exit code (or signal) is the launcher's.
 */
const EGRESS_LAUNCHER_SOURCE = String.raw`
const fs = require('node:fs');
const net = require('node:net');
const { spawn } = require('node:child_process');
const [socketPath, file, ...args] = process.argv.slice(1);
if (!socketPath || !fs.existsSync(socketPath)) {
  process.stderr.write('agent-lanes egress launcher: the proxy socket ' + socketPath + ' is missing\n');
  process.exit(125);
}
const bridge = net.createServer((client) => {
  const upstream = net.connect(socketPath);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.pipe(upstream).pipe(client);
});
bridge.listen(0, '127.0.0.1', () => {
  const url = 'http://127.0.0.1:' + bridge.address().port;
  const env = { ...process.env };
  delete env.ELECTRON_RUN_AS_NODE;
  for (const name of ['HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY']) env[name] = env[name.toLowerCase()] = url;
  env.NO_PROXY = env.no_proxy = 'localhost,127.0.0.1';
  const child = spawn(file, args, { stdio: 'inherit', env });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('error', (error) => {
    process.stderr.write('agent-lanes egress launcher: ' + error.message + '\n');
    process.exit(error.code === 'ENOENT' ? 127 : 126);
  });
  child.on('exit', (code, signal) => {
    bridge.close();
    if (signal) process.kill(process.pid, signal);
    else process.exit(code === null ? 1 : code);
  });
});
`;

/** The command that runs `agentArgv` behind the bridge to the proxy at `socketPath`. */
export function launcherArgv(nodePath: string, socketPath: string, agentArgv: readonly string[]): string[] {
  return [nodePath, '-e', EGRESS_LAUNCHER_SOURCE, socketPath, ...agentArgv];
}
