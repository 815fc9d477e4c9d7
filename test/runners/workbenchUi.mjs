// Drives the VS Code workbench as a person would: the command palette, quick
// picks, input boxes, the Lanes view. Shared by the demo and the e2e tests.

/**
 * Runs a command by its palette title, e.g. "Agent Lanes: New Draft…". A webview that finishes loading (a review
 * just opened) can take the focus and close the palette between its opening and the typing, and the palette can open
 * before the extensions' commands are registered; the attempt is then made again. Nothing is retried once the
 * command's row was clicked, so a command never runs twice.
 */
export async function runCommand(page, title) {
  const input = page.locator('.quick-input-widget input');
  const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first();
  for (let attempt = 1; ; attempt++) {
    await openCommandPalette(page);
    try {
      await input.fill(`>${title}`, { timeout: 5_000 });
      await row.waitFor({ timeout: attempt < 6 ? 5_000 : 15_000 });
    } catch (error) {
      if (attempt === 6) throw error;
      await page.keyboard.press('Escape');
      continue;
    }
    await row.click();
    return;
  }
}

/**
 * Opens the command palette. F1 pressed while a webview (the review, the metrics) holds the focus can stay in its
 * frame, so the focus is first taken back to the workbench's own document, and F1 pressed again if it did not open.
 */
async function openCommandPalette(page) {
  const input = page.locator('.quick-input-widget input');
  for (let attempt = 1; ; attempt++) {
    // Runs in the workbench's page (a string, so this Node file names no browser globals).
    await page.evaluate('document.activeElement instanceof HTMLIFrameElement && document.activeElement.blur()');
    await page.keyboard.press('F1');
    try {
      await input.waitFor({ timeout: attempt < 3 ? 5_000 : 15_000 });
      return;
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

/** Types into the open input box or quick pick and presses Enter. */
export async function answerInput(page, text) {
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: 15_000 });
  await input.fill(text);
  await page.waitForTimeout(150);
  await input.press('Enter');
}

/** Picks the quick pick row whose text contains `label`. */
export async function pickItem(page, label) {
  const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: label }).first();
  await row.waitFor({ timeout: 15_000 });
  await row.click({ timeout: 10_000 });
}

/** Clicks the Agent Lanes icon in the activity bar. */
export async function openLanesView(page) {
  await page.locator('.activitybar a.action-label[aria-label^="Agent Lanes"]').click({ timeout: 90_000 });
  await page.locator('.pane-body .monaco-list-row, .pane-body .welcome-view-content').first().waitFor({ timeout: 60_000 });
}

/** Waits for a row of the Lanes view that contains the text. */
export async function treeRow(page, text, timeout = 60_000) {
  const row = page.locator('.pane-body .monaco-list-row', { hasText: text }).first();
  await row.waitFor({ timeout });
  return row;
}

/** The review panel's own document: a child frame of the webview iframe the workbench made for Agent Lanes. */
export async function reviewFrame(page, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const frame of page.frames()) {
      if (!frame.url().includes('extensionId=agent-lanes.agent-lanes')) continue;
      for (const child of frame.childFrames()) {
        if (
          await child
            .locator('#app')
            .count()
            .catch(() => 0)
        )
          return child;
      }
    }
    if (Date.now() > deadline) throw new Error('No review webview frame appeared.');
    await page.waitForTimeout(250);
  }
}

/** The first webview frame (not the workbench) whose body shows `text`. */
export async function frameWithText(page, text, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const frame of page.frames()) {
      const found = await frame
        .locator('body', { hasText: text })
        .count()
        .catch(() => 0);
      if (found && frame !== page.mainFrame()) return frame;
    }
    if (Date.now() > deadline) throw new Error(`No webview shows "${text}".`);
    await page.waitForTimeout(250);
  }
}
