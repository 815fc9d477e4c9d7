import * as vscode from 'vscode';
import type { Logger } from '../core/logger';
import { Commands } from './constants';

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

/**
 * Shows a message that says what to do and logs the details: no silent catch.
 */
export function reportError(logger: Logger, userMessage: string, error?: unknown): void {
  if (error !== undefined) logger.error(`${userMessage}`, error instanceof Error ? (error.stack ?? error.message) : String(error));
  else logger.error(userMessage);
  // Not awaited: whoever reports must not wait until the person dismisses the message.
  void vscode.window.showErrorMessage(userMessage, 'Show Log').then((choice) => {
    if (choice === 'Show Log') void vscode.commands.executeCommand(Commands.showLog);
  });
}
