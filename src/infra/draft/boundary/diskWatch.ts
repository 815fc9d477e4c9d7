import { execa } from 'execa';

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
 * Watches how much an agent adds to the folders it may write and calls
 * `onExceeded` once when it has added more than `limitMb`. No backend here
 * can put a quota on a bind-mounted folder, so this measures instead.
 */
export async function watchDiskUse(
  folders: readonly string[],
  limitMb: number,
  onExceeded: (addedMb: number) => void,
): Promise<{ stop(): void }> {
  const baseline = (await usedKb(folders)) ?? 0;
  let stopped = false;
  let busy = false;
  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    void usedKb(folders)
      .then((now) => {
        const addedMb = Math.round(((now ?? baseline) - baseline) / 1024);
        if (!stopped && addedMb > limitMb) {
          stopped = true;
          clearInterval(timer);
          onExceeded(addedMb);
        }
      })
      .finally(() => (busy = false));
  }, INTERVAL_MS);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
