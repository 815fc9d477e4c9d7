import * as vscode from 'vscode';
import { fileAtRevision } from '../infra/git/queries';
import { GIT_CONTENT_SCHEME } from './constants';

/** A URI for a file at a commit of a repository, shown read-only in VS Code's diff editors. */
export function gitContentUri(repoRoot: string, ref: string, path: string): vscode.Uri {
  return vscode.Uri.from({ scheme: GIT_CONTENT_SCHEME, path: `/${path}`, query: JSON.stringify({ repoRoot, ref }) });
}

/** Serves `git show <ref>:<path>`; a path missing at that commit reads as empty (added or deleted files). */
export class GitContentProvider implements vscode.TextDocumentContentProvider {
  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const { repoRoot, ref } = JSON.parse(uri.query) as { repoRoot: string; ref: string };
    const path = uri.path.replace(/^\//, '');
    return fileAtRevision(repoRoot, ref, path);
  }
}
