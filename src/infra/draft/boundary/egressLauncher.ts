// STUB until the egress branch lands.
export function launcherArgv(nodePath: string, socketPath: string, agentArgv: string[]): string[] {
  return [nodePath, socketPath, ...agentArgv];
}
