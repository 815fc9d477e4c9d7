import { readFile, readdir } from 'node:fs/promises';
import { startWatchdog } from './watchdog';

/** How often the process tree is measured: a fork bomb or a sudden allocation can overshoot by what it does in this time. */
const INTERVAL_MS = 500;
const PAGE_BYTES = 4096;

interface ProcessInfo {
  ppid: number;
  rssBytes: number;
}

async function readProcesses(): Promise<Map<number, ProcessInfo>> {
  const processes = new Map<number, ProcessInfo>();
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
    if (!stat) continue;
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    processes.set(Number(name), { ppid: Number(fields[1]), rssBytes: Number(fields[21]) * PAGE_BYTES });
  }
  return processes;
}

/** The process and everything below it (a process that left the group with setsid is still a descendant). */
function tree(root: number, processes: Map<number, ProcessInfo>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, info] of processes) children.set(info.ppid, [...(children.get(info.ppid) ?? []), pid]);
  const found: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.pop()!;
    if (!processes.has(pid)) continue;
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

export interface ProcessLimits {
  memoryMb?: number | undefined;
  pids?: number | undefined;
}

/**
 * Where no cgroup can hold the agent (bubblewrap makes none), its memory
 * (resident, summed over its process tree) and its number of processes are
 * measured instead, and `onExceeded` is called once when either passes the
 * policy's limit. Linux only (/proc).
 */
export function watchProcessTree(rootPid: number, limits: ProcessLimits, onExceeded: (what: string) => void): { stop(): void } {
  return startWatchdog(
    INTERVAL_MS,
    async () => {
      const processes = await readProcesses();
      const pids = tree(rootPid, processes);
      const memoryMb = Math.round(pids.reduce((sum, pid) => sum + (processes.get(pid)?.rssBytes ?? 0), 0) / 1024 / 1024);
      if (limits.pids !== undefined && pids.length > limits.pids)
        return `the process limit of ${limits.pids} (lanes.agent.limits.pids) was reached: ${pids.length} processes`;
      if (limits.memoryMb !== undefined && memoryMb > limits.memoryMb)
        return `the memory limit of ${limits.memoryMb} MB (lanes.agent.limits.memoryMb) was reached: ${memoryMb} MB resident`;
      return undefined;
    },
    onExceeded,
  );
}
