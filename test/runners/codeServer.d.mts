import type { Browser, Page } from 'playwright-core';

export interface CodeServer {
  url: string;
  port: number;
  userDataDir: string;
  extensionsDir: string;
  output: string[];
  stop(): Promise<void>;
}
export interface WorkbenchOptions {
  folder?: string;
  workspace?: string;
  extensionDevelopmentPath?: string;
  extensionTestsPath?: string;
}
export const CODE_SERVER_VERSION: string;
export function codeServerBin(): string;
export function chromiumPath(): string;
export function freePort(): Promise<number>;
export function startCodeServer(options?: {
  settings?: Record<string, unknown> | undefined;
  env?: Record<string, string> | undefined;
  userDataDir?: string | undefined;
  extensionsDir?: string | undefined;
  installVsix?: string | undefined;
  log?: ((text: string) => void) | undefined;
}): Promise<CodeServer>;
export function launchBrowser(): Promise<Browser>;
export function workbenchUrl(server: CodeServer, options: WorkbenchOptions): string;
export function runTestsInWorkbench(
  server: CodeServer,
  browser: Browser,
  options: WorkbenchOptions,
  more?: { timeoutMs?: number; onLog?: (text: string) => void },
): Promise<{ code: number | 'timeout'; logs: string[]; page: Page }>;
export function formatLog(args: unknown[]): string;
