import * as vscode from 'vscode';
import type { Logger } from '../core/logger';

/** The one output channel, as a LogOutputChannel behind the core Logger interface. */
export function createLogger(): { logger: Logger; channel: vscode.LogOutputChannel } {
  const channel = vscode.window.createOutputChannel('Agent Lanes', { log: true });
  const logger: Logger = {
    trace: (message, ...args) => channel.trace(message, ...args),
    debug: (message, ...args) => channel.debug(message, ...args),
    info: (message, ...args) => channel.info(message, ...args),
    warn: (message, ...args) => channel.warn(message, ...args),
    error: (message, ...args) => channel.error(message, ...args),
  };
  return { logger, channel };
}
