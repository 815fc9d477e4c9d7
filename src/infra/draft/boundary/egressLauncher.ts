// The first program inside the isolation boundary when the agent may reach the network. The boundary's network
// namespace has loopback only, and agents' HTTP clients speak to a TCP proxy, not a Unix socket: so the launcher
// listens on 127.0.0.1, forwards every connection byte for byte to the host's egress proxy (egressProxy.ts) through the
// bind-mounted socket, and starts the agent with the proxy variables pointing at that port. The launcher decides
// nothing: the policy is applied on the host, outside the agent's reach.
//
// Run as `node -e <source> -- <socketPath> <agentFile> <agentArgs...>` (see launcherArgv). Node built-ins only.
// - The agent starts only once the listener is up, so its first request can use the proxy; the launcher prints nothing
//   when all is well (the agent's stdio is inherited untouched).
// - Exit status: the agent's; when the agent dies of a signal, the launcher re-raises it (or exits 128 + its number
//   when it cannot, as PID 1 in a container). 125: the launcher itself failed (no socket, no listener, bad arguments);
//   126 / 127: the agent could not be started / was not found. Each failure is one line on stderr.
// - SIGTERM, SIGINT and SIGHUP are forwarded to the agent.

/**
 * In place of the agent's program: run the canary inside the launcher (see runCanary). Not a path any
 * program has, so no agent command can mean it.
 */
export const CANARY_IN_LAUNCHER = '--agent-lanes-canary-in-launcher';

/**
 * In place of the agent's program: run the canary, report its probes to the host on fd 3, and start the agent (the
 * arguments after the canary's source and spec) only when the host answers "go" there (see gatedCanary in
 * agentBoundary.ts). One start of the boundary for both; the agent never exists unless the host let it.
 */
export const CANARY_THEN_AGENT = '--agent-lanes-canary-then-agent';

/**
 * The launcher program (CommonJS, for `node -e`).
 * @internal Exported for its unit tests; the product runs it through launcherArgv.
 */
export const EGRESS_LAUNCHER_SOURCE = `'use strict';
const fs = require('fs');
const net = require('net');
const os = require('os');
const childProcess = require('child_process');

const [socketPath, file, ...args] = process.argv.slice(1);
const fail = (message, code) => {
  process.stderr.write('agent-lanes egress launcher: ' + message + '\\n');
  process.exit(code);
};
if (!socketPath || !file) fail('usage: node -e <launcher> -- <socketPath> <agentFile> [agentArgs...]', 125);
let isSocket = false;
try {
  isSocket = fs.statSync(socketPath).isSocket();
} catch (error) {
  isSocket = false;
}
if (!isSocket) fail('the egress proxy socket ' + socketPath + ' is missing, so the agent has no network; it was not started.', 125);

let child;
// The agent's environment: the launcher's own, with the proxy variables (set once the listener is up).
let agentEnvironment;
const forwarded = ['SIGTERM', 'SIGINT', 'SIGHUP'];
for (const signal of forwarded) {
  process.on(signal, () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    else process.exit(128 + os.constants.signals[signal]);
  });
}

// Byte for byte, both directions; each side's end is passed on (half-close), an error on either closes both.
const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const upstream = net.connect({ path: socketPath, allowHalfOpen: true });
  const both = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', both);
  upstream.on('error', both);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.on('error', (error) => fail('cannot listen on 127.0.0.1: ' + error.message, 125));
server.listen(0, '127.0.0.1', () => {
  const proxy = 'http://127.0.0.1:' + server.address().port;
  const noProxy = 'localhost,127.0.0.1';
  const env = Object.assign({}, process.env, {
    HTTPS_PROXY: proxy,
    https_proxy: proxy,
    HTTP_PROXY: proxy,
    http_proxy: proxy,
    ALL_PROXY: proxy,
    all_proxy: proxy,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
  });
  // The editor's runtime ran this launcher as Node; the agent is its own program.
  delete env.ELECTRON_RUN_AS_NODE;
  agentEnvironment = env;
  const adoptEnvironment = () => {
    for (const name of Object.keys(process.env)) if (!(name in env)) delete process.env[name];
    Object.assign(process.env, env);
  };
  if (file === '${CANARY_THEN_AGENT}') {
    // The canary in this process, then the agent: the report goes to the host on fd 3 (a socket the host holds), and
    // only its answer "go" starts the agent. Anything else, or the host's end closing first, ends the launcher with
    // nothing started. fd 3 is closed before the agent starts: the agent cannot speak to the host through it.
    const [canarySource, canarySpec, agentFile, ...agentArgs] = args;
    if (!canarySource || !canarySpec || !agentFile) fail('usage: ' + file + ' <canarySource> <canarySpec> <agentFile> [agentArgs...]', 125);
    let channel;
    try {
      channel = new net.Socket({ fd: 3, readable: true, writable: true });
    } catch (error) {
      fail('no channel to the host on fd 3 (' + error.message + '); the agent was not started.', 125);
    }
    channel.on('error', () => undefined);
    channel.on('close', () => {
      if (!child) process.exit(125);
    });
    adoptEnvironment();
    process.argv = [process.argv[0], canarySpec];
    globalThis.__lanesCanaryReport = (report) => {
      let answer = '';
      channel.on('data', (chunk) => {
        answer += chunk;
        const end = answer.indexOf('\\n');
        if (end < 0) return;
        if (answer.slice(0, end) !== 'go') process.exit(125);
        channel.removeAllListeners('data');
        channel.destroy();
        startAgent(agentFile, agentArgs);
      });
      channel.write(report);
    };
    new Function('require', canarySource)(require);
    return;
  }
  if (file === '${CANARY_IN_LAUNCHER}') {
    // The isolation canary (node -e SOURCE SPEC), run in this process: the same boundary and the same environment
    // the agent gets, without starting Node a second time. It calls __lanesCanaryDone once it printed its probes.
    adoptEnvironment();
    process.argv = [process.argv[0], args[2]];
    globalThis.__lanesCanaryDone = () => {
      server.close();
      process.exit(0);
    };
    new Function('require', args[1])(require);
    return;
  }
  startAgent(file, args);
});

function startAgent(file, args) {
  child = childProcess.spawn(file, args, { stdio: 'inherit', env: agentEnvironment });
  child.on('error', (error) => {
    fail('cannot start ' + file + ': ' + error.message, error.code === 'ENOENT' ? 127 : 126);
  });
  child.on('exit', (code, signal) => {
    server.close();
    if (signal) {
      for (const s of forwarded) process.removeAllListeners(s);
      process.kill(process.pid, signal);
      // Still here: the signal is ignored (PID 1) or handled elsewhere; report it the way a shell would.
      setTimeout(() => process.exit(128 + (os.constants.signals[signal] || 0)), 200);
    } else {
      process.exit(code === null ? 1 : code);
    }
  });
}
`;

/** The argv that runs the launcher with `nodePath` inside the boundary, in front of the agent's own argv. */
export function launcherArgv(nodePath: string, socketPath: string, agentArgv: readonly string[]): string[] {
  if (agentArgv.length === 0) throw new Error('launcherArgv: the agent command is empty.');
  // `--` ends node's own options, so nothing after it (a socket path, an agent flag) is read as one.
  return [nodePath, '-e', EGRESS_LAUNCHER_SOURCE, '--', socketPath, ...agentArgv];
}
