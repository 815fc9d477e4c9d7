import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as vscode from 'vscode';

/** The only folders a review webview may load from: the webview bundle and the media folder. */
function reviewResourceRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')];
}

export function reviewWebviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return { enableScripts: true, enableCommandUris: false, localResourceRoots: reviewResourceRoots(extensionUri) };
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The webview's bundle and styles, read once: inlined in the page, they load with it, not one by one after it. */
let inlineAssets: { root: string; script: string; codiconCss: string; reviewCss: string } | undefined | null;

function readInlineAssets(extensionUri: vscode.Uri): { script: string; codiconCss: string; reviewCss: string } | undefined {
  const root = extensionUri.fsPath;
  if (inlineAssets !== undefined && (inlineAssets === null || inlineAssets.root === root)) return inlineAssets ?? undefined;
  try {
    const read = (...parts: string[]) => readFileSync(vscode.Uri.joinPath(extensionUri, ...parts).fsPath, 'utf8');
    inlineAssets = {
      root,
      script: read('dist', 'webview', 'review.js'),
      codiconCss: read('dist', 'webview', 'review.css'),
      reviewCss: read('media', 'review.css'),
    };
  } catch {
    // Not built with the assets beside it: the page links them instead.
    inlineAssets = null;
  }
  return inlineAssets ?? undefined;
}

/** Keeps inlined text from closing its element early. */
const inlineSafe = (text: string, tag: 'script' | 'style') => text.replace(new RegExp(`</(${tag})`, 'gi'), '<\\/$1');

/**
 * The review page: a strict CSP (nothing but our own bundle and styles, a
 * fresh nonce each time), the change it belongs to in a meta tag, and the
 * app's script and styles, inlined with the nonce (the codicon font is the one
 * file the page loads). Everything else arrives as messages.
 */
export function reviewHtml(
  webview: vscode.Webview,
  extensionUri: vscode.Uri,
  page: { changeId: string; repoRoot: string; title: string },
): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (...parts: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...parts)).toString();
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `img-src ${webview.cspSource}`,
  ].join('; ');
  const inline = readInlineAssets(extensionUri);
  // The bundled codicon stylesheet names its font relative to itself: point it at the font's webview address.
  const codiconCss = inline?.codiconCss.replace(
    /url\("?\.\/([^")?]+\.ttf)(\?[^")]*)?"?\)/g,
    (_match, file: string) => `url("${asset('dist', 'webview', file)}")`,
  );
  // vscode-elements' icons load the codicon stylesheet into their own shadow roots from this element's href;
  // a preload does not hold the page up, and the page itself has the stylesheet inlined.
  const styles = inline
    ? `<link rel="preload" as="style" id="vscode-codicon-stylesheet" href="${asset('dist', 'webview', 'review.css')}" nonce="${nonce}">
<style nonce="${nonce}">${inlineSafe(codiconCss!, 'style')}</style>
<style nonce="${nonce}">${inlineSafe(inline.reviewCss, 'style')}</style>`
    : `<link rel="stylesheet" id="vscode-codicon-stylesheet" href="${asset('dist', 'webview', 'review.css')}" nonce="${nonce}">
<link rel="stylesheet" href="${asset('media', 'review.css')}" nonce="${nonce}">`;
  const script = inline
    ? `<script nonce="${nonce}">${inlineSafe(inline.script, 'script')}</script>`
    : `<script nonce="${nonce}" src="${asset('dist', 'webview', 'review.js')}"></script>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="agent-lanes-change" content="${escapeAttribute(page.changeId)}">
<meta name="agent-lanes-repo" content="${escapeAttribute(page.repoRoot)}">
${styles}
<title>${escapeAttribute(page.title)}</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">Loading the review…</p></main>
${script}
</body>
</html>`;
}

/** A page without scripts, for a review that cannot be shown (its change is gone). */
export function staticMessageHtml(webview: vscode.Webview, extensionUri: vscode.Uri, title: string, message: string): string {
  const nonce = randomBytes(16).toString('base64');
  const css = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', 'review.css')).toString();
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource} 'nonce-${nonce}'">
<link rel="stylesheet" href="${css}" nonce="${nonce}">
<title>${escapeAttribute(title)}</title>
</head>
<body><main id="app"><h1>${escapeAttribute(title)}</h1><p class="notice warning">${escapeAttribute(message)}</p></main></body>
</html>`;
}
