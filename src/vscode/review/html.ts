import { randomBytes } from 'node:crypto';
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

/**
 * The review page: a strict CSP (nothing but our own bundle and styles, a
 * fresh nonce each time), the change it belongs to in a meta tag, and the
 * app's script. Everything else arrives as messages.
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
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="agent-lanes-change" content="${escapeAttribute(page.changeId)}">
<meta name="agent-lanes-repo" content="${escapeAttribute(page.repoRoot)}">
<link rel="stylesheet" id="vscode-codicon-stylesheet" href="${asset('dist', 'webview', 'review.css')}" nonce="${nonce}">
<link rel="stylesheet" href="${asset('media', 'review.css')}" nonce="${nonce}">
<title>${escapeAttribute(page.title)}</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">Loading the review…</p></main>
<script nonce="${nonce}" src="${asset('dist', 'webview', 'review.js')}"></script>
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
