import * as vscode from 'vscode';

const MAX_DOCUMENTS = 50;

/**
 * Read-only documents the extension writes on demand (the effective policy, a
 * decision's explanation, a change's history). Each document is rendered
 * again whenever VS Code asks for it, and `refresh` makes open ones re-ask,
 * so they follow the policy and the audit log while they stay open.
 */
export class GeneratedDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly renderers = new Map<string, () => Promise<string>>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly registration: vscode.Disposable;
  private counter = 0;

  constructor(readonly scheme: string) {
    this.registration = vscode.workspace.registerTextDocumentContentProvider(scheme, this);
  }

  /**
   * A new document at `path` (its last segment is the tab title), rendered by
   * `render`. Each call gives a new URI, so a command never shows a copy VS
   * Code kept from before.
   */
  define(path: string, render: () => Promise<string>): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: this.scheme, path: path.startsWith('/') ? path : `/${path}`, query: `v${++this.counter}` });
    this.renderers.set(uri.toString(), render);
    // The oldest are forgotten; reopening one of those says to run its command again.
    for (const key of this.renderers.keys()) {
      if (this.renderers.size <= MAX_DOCUMENTS) break;
      this.renderers.delete(key);
    }
    return uri;
  }

  /** Re-renders the documents whose path starts with `prefix` (all when omitted); VS Code asks again for those it shows. */
  refresh(prefix = '/'): void {
    for (const key of this.renderers.keys()) {
      const uri = vscode.Uri.parse(key);
      if (uri.path.startsWith(prefix)) this.changed.fire(uri);
    }
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const render = this.renderers.get(uri.toString());
    // A document restored after a restart (or forgotten) has nobody to render it.
    if (!render) return 'This view is no longer available. Run the Agent Lanes command that opened it again.\n';
    return render();
  }

  /** Opens a generated Markdown document in the Markdown preview (the source when the preview is unavailable). */
  async showMarkdown(uri: vscode.Uri): Promise<void> {
    const doc = await vscode.workspace.openTextDocument(uri);
    try {
      await vscode.commands.executeCommand('markdown.showPreview', uri);
    } catch {
      await vscode.window.showTextDocument(doc, { preview: true });
    }
  }

  dispose(): void {
    this.registration.dispose();
    this.changed.dispose();
    this.renderers.clear();
  }
}
