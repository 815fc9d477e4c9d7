import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as vscode from 'vscode';
import type { VerifyResult } from '../../core/audit/audit';
import type { Actor } from '../../core/change';
import type { Logger } from '../../core/logger';
import { compileSecretPatterns } from '../../core/redaction';
import { exportAudit, type AuditExport } from '../../infra/audit/export';
import { redactWithPolicyPatterns, type RepairResult } from '../../infra/audit/log';
import { exportProofBundle, readChangeDiff, readChangeLogs, type ProofBundleResult } from '../../infra/audit/proofBundle';
import { Commands } from '../constants';
import type { ChangeTarget, CommandKit } from '../commandKit';
import { GeneratedDocuments } from '../generatedDocuments';
import { decisionsOnRecord, renderHistory } from './historyView';
import { whoAmI } from '../identity';
import { LaneError } from '../../core/errors';
import { showError } from '../commandKit';
import type { PolicyController } from '../policy/policyController';
import type { RepoContext, RepositoryRegistry } from '../repositories';

import { EditorAuditSinks } from './auditSinks';
import { counted } from '../../core/words';

const AUDIT_DOC_SCHEME = 'agent-lanes-audit';

export interface AuditCommandServices {
  logger: Logger;
  registry: RepositoryRegistry;
  policy: PolicyController;
  kit: CommandKit;
  secrets: vscode.SecretStorage;
}

export interface RepositoryArgs {
  /** A repository root; asked with a picker when the workspace has several. */
  repository?: string;
}

export interface ExportAuditArgs extends RepositoryArgs {
  /** The folder to write audit.jsonl and checkpoint.json to (no dialog). */
  destination?: string;
  /** Replace an earlier export in that folder without asking. */
  confirmed?: boolean;
}

export interface ExportProofBundleOptions {
  /** A .tar.gz file to write, or a folder to write agent-lanes-proof-<id>.tar.gz into (no dialog). */
  destination?: string;
}

/** Where a change's History document lives; a path per change, so only its own events re-render it. */
const historyPath = (repo: RepoContext, changeId: string) => `/${repo.storage.repoKey.slice(0, 12)}/History ${changeId}.md`;

const userActor = async (repo: RepoContext): Promise<Actor> => ({ type: 'user', id: await whoAmI(repo.root) });

/**
 * The audit trail in the editor: verify, repair, export, proof bundles, a
 * change's history, and shipping every repository's log to the org sink.
 */
export class AuditCommands implements vscode.Disposable {
  private readonly docs = new GeneratedDocuments(AUDIT_DOC_SCHEME);
  private readonly sinks: EditorAuditSinks;
  /** Per repository root: the subscription to its log's appends. */
  private readonly watched = new Map<string, { repo: RepoContext; subscription: { dispose(): void } }>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly services: AuditCommandServices) {
    this.sinks = new EditorAuditSinks(services.registry, services.secrets, services.logger);
    const registryChanged = services.registry.onDidChange(() => this.watchRepositories());
    this.disposables.push(this.docs, this.sinks, { dispose: () => registryChanged.dispose() });
    this.watchRepositories();
  }

  /** Follows the registry: every open repository's log feeds its sink and its open History views. */
  private watchRepositories(): void {
    const repos = this.services.registry.repositories();
    const roots = new Set(repos.map((repo) => repo.root));
    for (const [root, watched] of this.watched) {
      if (roots.has(root) && this.services.registry.byRoot(root) === watched.repo) continue;
      watched.subscription.dispose();
      this.watched.delete(root);
    }
    for (const repo of repos) {
      if (this.watched.has(repo.root)) continue;
      redactWithPolicyPatterns(repo.lanes.context.audit, this.services.policy.service);
      const subscription = repo.lanes.context.audit.onDidAppend((events) => {
        this.sinks.notify(repo.root);
        for (const changeId of new Set(events.map((event) => event.changeId))) if (changeId) this.docs.refresh(historyPath(repo, changeId));
      });
      this.watched.set(repo.root, { repo, subscription });
    }
    void this.sinks.sync();
  }

  private pickRepository(args: RepositoryArgs, placeHolder: string): Promise<RepoContext | undefined> {
    return this.services.kit.pickRepository(args.repository, placeHolder);
  }

  // ---- Verify and repair ----

  async verify(args: RepositoryArgs = {}): Promise<VerifyResult | undefined> {
    const repo = await this.pickRepository(args, 'Verify the audit log of which repository?');
    if (!repo) return undefined;
    const audit = repo.lanes.context.audit;
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: `Verifying the audit log of ${repo.name}` },
      () => audit.verify(),
    );
    if (result.ok) {
      this.services.logger.info(`Audit log ${audit.file}: OK, ${result.count} events, head hash ${result.headHash}`);
      void vscode.window.showInformationMessage(
        `The audit log of ${repo.name} is intact: ${result.count} events, head hash ${result.headHash}.`,
      );
      return result;
    }
    this.services.logger.warn(
      `Audit log ${audit.file}: broken at seq ${result.seq} (line ${result.lineNumber}): ${result.problem}. ${result.message}`,
    );
    const torn = result.problem === 'torn';
    const advice = torn
      ? ' Repair cuts the incomplete line and records in the log that it did.'
      : ' Nothing was changed. Keep a copy for an investigation ("Agent Lanes: Export Audit Log"); the events before it still verify.';
    const actions = torn ? ['Repair', 'Open at Line'] : ['Open at Line'];
    void vscode.window
      .showErrorMessage(
        `The audit log of ${repo.name} is broken at seq ${result.seq} (line ${result.lineNumber}): ${result.problem}. ${result.message}${advice}`,
        ...actions,
      )
      .then((choice) => {
        if (choice === 'Repair') void vscode.commands.executeCommand(Commands.repairAuditLog, { repository: repo.root });
        if (choice === 'Open at Line') {
          const line = Math.max(0, result.lineNumber - 1);
          void vscode.window.showTextDocument(vscode.Uri.file(audit.file), {
            preview: true,
            selection: new vscode.Range(line, 0, line, 0),
          });
        }
      });
    return result;
  }

  async repair(args: RepositoryArgs = {}): Promise<RepairResult | undefined> {
    const repo = await this.pickRepository(args, 'Repair the audit log of which repository?');
    if (!repo) return undefined;
    const audit = repo.lanes.context.audit;
    const result = await audit.repair(await userActor(repo));
    this.services.logger.info(`Audit log ${audit.file}: ${result.message}`);
    const after = await audit.verify();
    const state = after.ok
      ? `It now verifies: ${after.count} events, head hash ${after.headHash}.`
      : `It is still broken at seq ${after.seq}: ${after.problem}. ${after.message}`;
    const text = result.repaired
      ? `Repaired the audit log of ${repo.name}: cut an incomplete last line (${result.removedBytes} bytes) and recorded that as event ${result.event?.seq ?? '?'}. ${state}`
      : `${result.message} ${state}`;
    void (after.ok ? vscode.window.showInformationMessage(text) : vscode.window.showErrorMessage(text));
    return result;
  }

  // ---- Export ----

  async exportLog(args: ExportAuditArgs = {}): Promise<AuditExport | undefined> {
    const repo = await this.pickRepository(args, 'Export the audit log of which repository?');
    if (!repo) return undefined;
    const audit = repo.lanes.context.audit;
    const destination =
      args.destination ??
      (
        await vscode.window.showOpenDialog({
          title: `Export the audit log of ${repo.name}: choose a folder`,
          openLabel: 'Export Here',
          canSelectFolders: true,
          canSelectFiles: false,
          canSelectMany: false,
        })
      )?.[0]?.fsPath;
    if (!destination) return undefined;
    const dest = resolve(destination);
    if (dest === dirname(audit.file)) {
      void vscode.window.showErrorMessage('That folder holds the live audit log; choose another folder for the export.');
      return undefined;
    }
    const existing = ['audit.jsonl', 'checkpoint.json'].filter((name) => existsSync(join(dest, name)));
    if (existing.length && !args.confirmed) {
      const answer = await vscode.window.showWarningMessage(
        `${dest} already has ${existing.join(' and ')}. Replace them with this export?`,
        { modal: true },
        'Replace',
      );
      if (answer !== 'Replace') return undefined;
    }
    const actor = await userActor(repo);
    try {
      const result = await exportAudit(audit.file, dest, { log: audit });
      const { checkpoint } = result;
      await audit.append({
        actor,
        action: 'audit.exported',
        details: { destination: dest, count: checkpoint.count, headHash: checkpoint.headHash, verified: checkpoint.verified },
      });
      const check = 'agent-lanes audit verify audit.jsonl --checkpoint checkpoint.json';
      const missing = result.missingFacts.length
        ? ` ${result.missingFacts.length} policy decision facts file(s) were not beside the log, so those decisions cannot be replayed from the export.`
        : '';
      if (checkpoint.verified) {
        void vscode.window[missing ? 'showWarningMessage' : 'showInformationMessage'](
          `Exported the audit log of ${repo.name} to ${dest}: ${checkpoint.count} events, head hash ${checkpoint.headHash}. Later, "${check}" shows that nothing was removed or rewritten.${missing}`,
        );
      } else {
        void vscode.window.showWarningMessage(
          `Exported the audit log of ${repo.name} to ${dest}, but it is not intact: ${checkpoint.problem?.problem ?? 'broken'} at seq ${checkpoint.problem?.seq ?? '?'}. checkpoint.json records the problem; run "Agent Lanes: Verify Audit Log" for details.`,
        );
      }
      return result;
    } catch (error) {
      showError(
        this.services.logger,
        new LaneError(
          'exportFailed',
          `Exporting the audit log of ${repo.name} to ${dest} failed: ${(error as Error).message}. Check that the folder is writable.`,
          { cause: error },
        ),
        'Exporting the audit log',
      );
      return undefined;
    }
  }

  async exportProofBundle(target: ChangeTarget, options: ExportProofBundleOptions = {}): Promise<ProofBundleResult | undefined> {
    const found = await this.services.kit.resolveTarget(target, () => true, 'Export a proof bundle for which change?');
    if (!found) return undefined;
    const { repo, change } = found;
    const name = `agent-lanes-proof-${change.id}.tar.gz`;
    let dest: string | undefined;
    if (options.destination) {
      const given = resolve(options.destination);
      const isFolder = await stat(given).then(
        (s) => s.isDirectory(),
        () => !/\.(tar\.gz|tgz)$/i.test(given),
      );
      dest = isFolder ? join(given, name) : given;
    } else {
      const folder = vscode.workspace.workspaceFolders?.[0] ? dirname(vscode.workspace.workspaceFolders[0].uri.fsPath) : homedir();
      dest = (
        await vscode.window.showSaveDialog({
          title: `Proof bundle of change ${change.id}`,
          saveLabel: 'Export Proof Bundle',
          defaultUri: vscode.Uri.file(join(folder, name)),
          filters: { 'Proof bundle': ['gz', 'tgz'] },
        })
      )?.fsPath;
    }
    if (!dest) return undefined;
    const audit = repo.lanes.context.audit;
    try {
      const actor = await userActor(repo);
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Agent Lanes: writing the proof bundle of change ${change.id}…` },
        async () => {
          const evidence = await repo.evidence.read(change.id);
          const patterns = compileSecretPatterns(this.services.policy.service.effective.policy.secretPatterns ?? []).patterns;
          return exportProofBundle({
            changeId: change.id,
            ...(change.release ? { release: change.release } : {}),
            diffText: await readChangeDiff(repo.root, change),
            evidence:
              evidence.kind === 'ok'
                ? evidence.evidence
                : {
                    changeId: change.id,
                    note: evidence.kind === 'missing' ? 'No evidence was recorded for this change.' : evidence.message,
                  },
            logs: await readChangeLogs(
              repo.storage,
              change.id,
              evidence.kind === 'ok' ? evidence.evidence : undefined,
              this.services.logger,
            ),
            decisions: decisionsOnRecord(change, evidence.kind === 'ok' ? evidence.evidence : undefined),
            auditFile: audit.file,
            dest: dest!,
            log: audit,
            patterns,
          });
        },
      );
      await audit.append({
        actor,
        action: 'audit.proofBundleExported',
        changeId: change.id,
        details: {
          file: result.file,
          files: result.files.length,
          auditEvents: result.eventCount,
          redactions: result.redaction.total,
          checkpoint: { count: result.checkpoint.count, headHash: result.checkpoint.headHash },
        },
      });
      const redacted = result.redaction.total
        ? ` ${counted(result.redaction.total, 'secret-like value')} ${result.redaction.total === 1 ? 'was' : 'were'} redacted.`
        : '';
      void vscode.window.showInformationMessage(
        `Wrote the proof bundle of change ${change.id} to ${result.file}: the diff, evidence, logs, decisions and ${result.eventCount} audit events.${redacted} Open it with "tar xzf"; its README.md says what each file is.`,
      );
      return result;
    } catch (error) {
      showError(
        this.services.logger,
        new LaneError(
          'exportFailed',
          `Writing the proof bundle of change ${change.id} to ${dest} failed: ${(error as Error).message}. Check that the folder is writable.`,
          { cause: error },
        ),
        'Exporting the proof bundle',
      );
      return undefined;
    }
  }

  // ---- History ----

  async showHistory(target: ChangeTarget): Promise<vscode.Uri | undefined> {
    const found = await this.services.kit.resolveTarget(target, () => true, 'Show the history of which change?');
    if (!found) return undefined;
    const { repo, change } = found;
    const uri = this.docs.define(historyPath(repo, change.id), async () => {
      const events = await repo.lanes.context.audit.eventsFor(change.id);
      return renderHistory(repo.store.get(change.id), change.id, repo.name, events);
    });
    await this.docs.showMarkdown(uri);
    return uri;
  }

  // ---- Tokens: the audit sink's and the OTLP receiver's ----

  setSinkToken(args: { token?: string } = {}): Promise<void> {
    return this.storeToken(args, {
      noun: 'audit sink token',
      setting: 'agentLanes.audit.sinkEndpoint',
      receiver: 'the audit sink',
      store: (value) => this.sinks.setAuthorization(value),
    });
  }

  setOtlpToken(args: { token?: string } = {}): Promise<void> {
    return this.storeToken(args, {
      noun: 'OTLP token',
      setting: 'agentLanes.telemetry.otlpEndpoint',
      receiver: 'the OTLP receiver',
      store: (value) => this.sinks.setOtlpAuthorization(value),
    });
  }

  private async storeToken(
    args: { token?: string },
    target: { noun: string; setting: string; receiver: string; store: (value: string | undefined) => Promise<void> },
  ): Promise<void> {
    const entered =
      args.token ??
      (await vscode.window.showInputBox({
        title: target.noun.charAt(0).toUpperCase() + target.noun.slice(1),
        prompt: `Sent as the Authorization header to ${target.setting}: "<scheme> <credentials>", or a bare token (sent as "Bearer <token>"). Empty removes the stored token.`,
        password: true,
        ignoreFocusOut: true,
      }));
    if (entered === undefined) return;
    const token = entered.trim();
    if (!token) {
      await target.store(undefined);
      void vscode.window.showInformationMessage(`Removed the ${target.noun}: events are sent without an Authorization header.`);
    } else {
      if (!/^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/.test(token)) {
        void vscode.window.showErrorMessage(
          `The ${target.noun} must be one line of printable ASCII characters (an HTTP header value). Nothing was stored.`,
        );
        return;
      }
      await target.store(token.includes(' ') ? token : `Bearer ${token}`);
      void vscode.window.showInformationMessage(
        `Stored the ${target.noun} in VS Code's secret storage. It is sent only in the Authorization header to ${target.receiver}.`,
      );
    }
  }

  dispose(): void {
    for (const watched of this.watched.values()) watched.subscription.dispose();
    this.watched.clear();
    for (const d of this.disposables) d.dispose();
  }
}

export function registerAuditCommands(context: vscode.ExtensionContext, services: Omit<AuditCommandServices, 'secrets'>): AuditCommands {
  const commands = new AuditCommands({ ...services, secrets: context.secrets });
  const fail = (doing: string) => (error: unknown) => void showError(services.logger, error, doing);
  const argsOf = <T extends object>(args: unknown): T => (args && typeof args === 'object' && !('kind' in args) ? (args as T) : ({} as T));
  context.subscriptions.push(
    commands,
    vscode.commands.registerCommand(Commands.verifyAuditLog, (args?: RepositoryArgs) =>
      commands.verify(argsOf(args)).catch(fail('Verifying the audit log')),
    ),
    vscode.commands.registerCommand(Commands.repairAuditLog, (args?: RepositoryArgs) =>
      commands.repair(argsOf(args)).catch(fail('Repairing the audit log')),
    ),
    vscode.commands.registerCommand(Commands.exportAuditLog, (args?: ExportAuditArgs) =>
      commands.exportLog(argsOf(args)).catch(fail('Exporting the audit log')),
    ),
    vscode.commands.registerCommand(Commands.exportProofBundle, (target?: ChangeTarget, options?: ExportProofBundleOptions) =>
      commands.exportProofBundle(target, options ?? {}).catch(fail('Exporting the proof bundle')),
    ),
    vscode.commands.registerCommand(Commands.showHistory, (target?: ChangeTarget) =>
      commands.showHistory(target).catch(fail('Showing the history')),
    ),
    vscode.commands.registerCommand(Commands.setAuditSinkToken, (args?: { token?: string }) =>
      commands.setSinkToken(argsOf(args)).catch(fail('Storing the audit sink token')),
    ),
    vscode.commands.registerCommand(Commands.setOtlpToken, (args?: { token?: string }) =>
      commands.setOtlpToken(argsOf(args)).catch(fail('Storing the OTLP token')),
    ),
  );
  return commands;
}
