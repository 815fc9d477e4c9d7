import type { Locator, Page } from 'playwright-core';
export function runCommand(page: Page, title: string): Promise<void>;
export function answerInput(page: Page, text: string): Promise<void>;
export function pickItem(page: Page, label: string): Promise<void>;
export function openLanesView(page: Page): Promise<void>;
export function treeRow(page: Page, text: string, timeout?: number): Promise<Locator>;
