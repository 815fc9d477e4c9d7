/** The logging surface core and infra write to; the editor supplies a LogOutputChannel behind it. */
export interface Logger {
  trace(message: string, ...args: unknown[]): void;
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string | Error, ...args: unknown[]): void;
}

/** For tests and the command line: writes to stderr, or nothing. */
export function consoleLogger(quiet = false): Logger {
  const write =
    (level: string) =>
    (message: string | Error, ...args: unknown[]) => {
      if (!quiet) console.error(`[${level}]`, message instanceof Error ? message.message : message, ...args);
    };
  return { trace: () => undefined, debug: () => undefined, info: write('info'), warn: write('warn'), error: write('error') };
}
