import { execa } from 'execa';
import { startWatchdog } from './watchdog';

/** How often the folders are measured; a fast writer can overshoot the limit by what it writes in this time. */
const INTERVAL_MS = 1_000;

async function usedKb(folders: readonly string[]): Promise<number | undefined> {
  const result = await execa('du', ['-s', '-k', '-x', ...folders], { reject: false, timeout: 30_000, stdin: 'ignore' });
  if (!result.stdout) return undefined;
  return result.stdout
    .trim()
    .split('\n')
    .reduce((sum, line) => sum + (Number.parseInt(line, 10) || 0), 0);
}

/**
 * Watches how much an agent adds to the folders it may write, and says so once
 * it has added more than `limitMb`. No backend here can put a quota on a
 * bind-mounted folder, so this measures instead.
 */
export async function watchDiskUse(
  folders: readonly string[],
  limitMb: number,
  onExceeded: (what: string) => void,
): Promise<{ stop(): void }> {
  const baseline = (await usedKb(folders)) ?? 0;
  return startWatchdog(
    INTERVAL_MS,
    async () => {
      const addedMb = Math.round((((await usedKb(folders)) ?? baseline) - baseline) / 1024);
      return addedMb > limitMb
        ? `the disk limit of ${limitMb} MB (lanes.agent.limits.diskMb) was reached: ${addedMb} MB written`
        : undefined;
    },
    onExceeded,
  );
}
