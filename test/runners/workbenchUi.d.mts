import type { Locator, Page } from 'playwright-core';
export function runCommand(page: Page, title: string): Promise<void>;
export function answerInput(page: Page, text: string): Promise<void>;
export function pickItem(page: Page, label: string): Promise<void>;
export function openLanesView(page: Page): Promise<void>;
export function treeRow(page: Page, text: string | RegExp, timeout?: number): Promise<Locator>;
import type { Frame } from 'playwright-core';
export function reviewFrame(page: Page, timeoutMs?: number): Promise<Frame>;
