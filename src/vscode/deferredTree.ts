import * as vscode from 'vscode';

/**
 * The Lanes view's data provider from start-up on: it asks for the lanes to
 * load when the view first needs its items, then forwards every call to the
 * real provider. A tree view's provider cannot be swapped, so this stays.
 */
export class DeferredTree<T> implements vscode.TreeDataProvider<T>, vscode.Disposable {
  private real: vscode.TreeDataProvider<T> | undefined;
  private forwarding: vscode.Disposable | undefined;
  private readonly changed = new vscode.EventEmitter<T | T[] | undefined | null | void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly load: () => void) {}

  /** Called by the lanes once they are built: from now on the real provider answers. */
  attach(real: vscode.TreeDataProvider<T>): void {
    this.real = real;
    this.forwarding = real.onDidChangeTreeData?.((element) => this.changed.fire(element));
    this.changed.fire(undefined);
  }

  private provider(): vscode.TreeDataProvider<T> | undefined {
    if (!this.real) this.load();
    return this.real;
  }

  getChildren(element?: T): vscode.ProviderResult<T[]> {
    return this.provider()?.getChildren(element) ?? [];
  }

  getTreeItem(element: T): vscode.TreeItem | Thenable<vscode.TreeItem> {
    const real = this.provider();
    if (!real) throw new Error('The Lanes view asked for an item before the lanes loaded.');
    return real.getTreeItem(element);
  }

  getParent(element: T): vscode.ProviderResult<T> {
    return this.provider()?.getParent?.(element);
  }

  dispose(): void {
    this.forwarding?.dispose();
    this.changed.dispose();
  }
}
