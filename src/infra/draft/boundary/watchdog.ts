/**
 * Measures something every `intervalMs` (never two measurements at once) and
 * calls `onExceeded` once, with what `check` said, the first time `check`
 * reports a limit passed. For limits no backend here can enforce by itself.
 */
export function startWatchdog(
  intervalMs: number,
  check: () => Promise<string | undefined>,
  onExceeded: (what: string) => void,
): { stop(): void } {
  let stopped = false;
  let busy = false;
  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    void check()
      .then((exceeded) => {
        if (exceeded === undefined || stopped) return;
        stopped = true;
        clearInterval(timer);
        onExceeded(exceeded);
      })
      .catch(() => undefined)
      .finally(() => (busy = false));
  }, intervalMs);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
