// Preloaded into code-server's Node processes when NODE_V8_COVERAGE is set.
// VS Code ends an extension host with SIGTERM, and a process killed by a signal
// writes no V8 coverage: exiting on the signal lets Node write it.
if (process.argv.includes('--type=extensionHost')) process.once('SIGTERM', () => process.exit(143));
