import type { Frame, Locator, Page } from 'playwright-core';
export function runCommand(page: Page, title: string): Promise<void>;
export function answerInput(page: Page, text: string): Promise<void>;
export function pickItem(page: Page, label: string): Promise<void>;
export function openLanesView(page: Page): Promise<void>;
export function treeRow(page: Page, text: string | RegExp, timeout?: number): Promise<Locator>;
export function reviewFrame(page: Page, timeoutMs?: number): Promise<Frame>;
export function frameWithText(page: Page, text: string, timeoutMs?: number): Promise<Frame>;
