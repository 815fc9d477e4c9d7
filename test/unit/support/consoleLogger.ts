import type { Logger } from '../../../src/core/logger';

/** A Logger for tests: writes warnings and errors to stderr, or nothing when quiet. */
export function consoleLogger(quiet = false): Logger {
  const write =
    (level: string) =>
    (message: string | Error, ...args: unknown[]) => {
      if (!quiet) console.error(`[${level}]`, message instanceof Error ? message.message : message, ...args);
    };
  return { trace: () => undefined, debug: () => undefined, info: write('info'), warn: write('warn'), error: write('error') };
}
