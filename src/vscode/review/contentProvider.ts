import * as vscode from 'vscode';
import { REVIEW_CONTENT_SCHEME } from '../constants';
import type { Logger } from '../../core/logger';
import { readBlob } from '../../infra/review/reviewDiff';
import type { RepositoryRegistry } from '../repositories';

/** Read-only documents of a change's base and head, for VS Code's own diff editors. */

const OBJECT_ID = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/** A URI whose path is the file's (so the editor picks its language) and whose query names the repository and blob. */
export function reviewContentUri(repoRoot: string, path: string, blobId: string | undefined): vscode.Uri {
  const query = new URLSearchParams({ repo: repoRoot, blob: blobId ?? '0'.repeat(40) }).toString();
  return vscode.Uri.from({ scheme: REVIEW_CONTENT_SCHEME, path: `/${path}`, query });
}

/**
 * Serves blobs of the repositories the extension knows, and nothing else: a
 * URI naming another folder or something other than an object id is refused.
 */
export class ReviewContentProvider implements vscode.TextDocumentContentProvider {
  constructor(
    private readonly registry: RepositoryRegistry,
    private readonly logger: Logger,
  ) {}

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const query = new URLSearchParams(uri.query);
    const root = query.get('repo') ?? '';
    const blob = query.get('blob') ?? '';
    await this.registry.ensureDiscovered();
    const repo = this.registry.byRoot(root);
    if (!repo || !OBJECT_ID.test(blob)) {
      this.logger.warn(`Refused to show ${uri.toString(true)}: not a blob of a repository of this workspace.`);
      throw new Error('This review document does not belong to a repository of this workspace.');
    }
    return Buffer.from(await readBlob(repo.root, blob)).toString('utf8');
  }
}
