import { existsSync } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import * as vscode from 'vscode';
import type { VerifyResult } from '../../core/audit/audit';
import type { Actor, Change } from '../../core/change';
import type { Evidence } from '../../core/evidence';
import type { Logger } from '../../core/logger';
import { compileSecretPatterns } from '../../core/redaction';
import { exportAudit, exportProofBundle, type ProofBundleResult, type RepairResult } from '../../infra/audit/auditLog';
import { AuditSink, validateSinkEndpoint } from '../../infra/audit/auditSink';
import { git } from '../../infra/git/gitProcess';
import { readConfig } from '../config';
import { Commands } from '../constants';
import type { ChangeTarget, CommandKit } from '../commandKit';
import { GeneratedDocuments } from '../generatedDocuments';
import { decisionsOnRecord, renderHistory } from './historyView';
import { whoAmI } from '../identity';
import { reportError } from '../logger';
import type { PolicyController } from '../policy/policyController';
import type { RepoContext, RepositoryRegistry } from '../repositories';

export const AUDIT_DOC_SCHEME = 'agent-lanes-audit';
/** SecretStorage key of the Authorization header value sent to the audit sink. */
export const SINK_AUTHORIZATION_SECRET = 'agentLanes.audit.sinkAuthorization';
/** A log larger than this goes into a proof bundle as its last part, with a note. */
const MAX_BUNDLED_LOG_BYTES = 10 * 1024 * 1024;

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
  readonly sinks: AuditSinks;
  /** Per repository root: the subscription to its log's appends. */
  private readonly watched = new Map<string, { repo: RepoContext; subscription: { dispose(): void } }>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly services: AuditCommandServices) {
    this.sinks = new AuditSinks(services);
    const registryChanged = services.registry.onDidChange(() => this.watchRepositories());
    this.disposables.push(
      this.docs,
      this.sinks,
      { dispose: () => registryChanged.dispose() },
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (event.affectsConfiguration('agentLanes.audit.sinkEndpoint'))
          void this.sinks.configure(readConfig().config.auditSinkEndpoint, services.registry.repositories());
      }),
    );
    void this.sinks.configure(readConfig().config.auditSinkEndpoint, []);
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
      const subscription = repo.lanes.context.audit.onDidAppend((events) => {
        this.sinks.notify(repo.root);
        for (const changeId of new Set(events.map((event) => event.changeId))) if (changeId) this.docs.refresh(historyPath(repo, changeId));
      });
      this.watched.set(repo.root, { repo, subscription });
    }
    void this.sinks.sync(repos);
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
      : ' Nothing was changed. Keep a copy for an investigation ("Lanes: Export Audit Log"); the events before it still verify.';
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

  async exportLog(args: ExportAuditArgs = {}): Promise<Awaited<ReturnType<typeof exportAudit>> | undefined> {
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
      if (checkpoint.verified) {
        void vscode.window.showInformationMessage(
          `Exported the audit log of ${repo.name} to ${dest}: ${checkpoint.count} events, head hash ${checkpoint.headHash}. Later, "${check}" shows that nothing was removed or rewritten.`,
        );
      } else {
        void vscode.window.showWarningMessage(
          `Exported the audit log of ${repo.name} to ${dest}, but it is not intact: ${checkpoint.problem?.problem ?? 'broken'} at seq ${checkpoint.problem?.seq ?? '?'}. checkpoint.json records the problem; run "Lanes: Verify Audit Log" for details.`,
        );
      }
      return result;
    } catch (error) {
      reportError(
        this.services.logger,
        `Exporting the audit log of ${repo.name} to ${dest} failed: ${(error as Error).message}. Check that the folder is writable.`,
        error,
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
            diffText: await changeDiff(repo, change),
            evidence:
              evidence.kind === 'ok'
                ? evidence.evidence
                : {
                    changeId: change.id,
                    note: evidence.kind === 'missing' ? 'No evidence was recorded for this change.' : evidence.message,
                  },
            logs: await changeLogs(repo, change, evidence.kind === 'ok' ? evidence.evidence : undefined, this.services.logger),
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
      const redacted = result.redaction.total ? ` ${result.redaction.total} secret-like value(s) were redacted.` : '';
      void vscode.window.showInformationMessage(
        `Wrote the proof bundle of change ${change.id} to ${result.file}: the diff, evidence, logs, decisions and ${result.eventCount} audit events.${redacted} Open it with "tar xzf"; its README.md says what each file is.`,
      );
      return result;
    } catch (error) {
      reportError(
        this.services.logger,
        `Writing the proof bundle of change ${change.id} to ${dest} failed: ${(error as Error).message}`,
        error,
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

  // ---- Sink token ----

  async setSinkToken(args: { token?: string } = {}): Promise<void> {
    const entered =
      args.token ??
      (await vscode.window.showInputBox({
        title: 'Audit sink token',
        prompt:
          'Sent as the Authorization header to agentLanes.audit.sinkEndpoint: "<scheme> <credentials>", or a bare token (sent as "Bearer <token>"). Empty removes the stored token.',
        password: true,
        ignoreFocusOut: true,
      }));
    if (entered === undefined) return;
    const token = entered.trim();
    if (!token) {
      await this.services.secrets.delete(SINK_AUTHORIZATION_SECRET);
      void vscode.window.showInformationMessage('Removed the audit sink token: events are sent without an Authorization header.');
    } else {
      if (!/^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/.test(token)) {
        void vscode.window.showErrorMessage(
          'The audit sink token must be one line of printable ASCII characters (an HTTP header value). Nothing was stored.',
        );
        return;
      }
      await this.services.secrets.store(SINK_AUTHORIZATION_SECRET, token.includes(' ') ? token : `Bearer ${token}`);
      void vscode.window.showInformationMessage(
        "Stored the audit sink token in VS Code's secret storage. It is sent only in the Authorization header to the audit sink.",
      );
    }
    await this.sinks.restart(this.services.registry.repositories());
  }

  dispose(): void {
    for (const watched of this.watched.values()) watched.subscription.dispose();
    this.watched.clear();
    for (const d of this.disposables) d.dispose();
  }
}

/** The change as a unified diff from its base to its head commit. */
async function changeDiff(repo: RepoContext, change: Change): Promise<string> {
  if (!change.headSha || change.headSha === change.baseSha) return '';
  try {
    const result = await git(repo.root, ['diff', '--no-color', '--no-ext-diff', '--no-textconv', change.baseSha, change.headSha, '--']);
    return result.stdout;
  } catch (error) {
    // A pruned lane branch can take its commits with it: say so in place of the diff.
    return `# The diff of ${change.baseSha.slice(0, 12)}..${change.headSha.slice(0, 12)} is not available: ${(error as Error).message.split('\n')[0]}\n`;
  }
}

/**
 * The change's logs from the repository's storage: the agent log in the
 * change's folder, the sandbox logs its evidence names, and the change's log
 * folder. Only files inside the repository's storage are read.
 */
async function changeLogs(
  repo: RepoContext,
  change: Change,
  evidence: Evidence | undefined,
  logger: Logger,
): Promise<{ name: string; text: string }[]> {
  const inside = (file: string) => {
    const rel = relative(repo.storage.root, file);
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
  };
  const files = new Set<string>();
  const listLogs = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isFile() && entry.name.endsWith('.log')) files.add(join(dir, entry.name));
    }
  };
  await listLogs(repo.storage.changeDir(change.id));
  for (const file of [evidence?.preparation?.logFile, ...(evidence?.tasks ?? []).map((task) => task.logFile)])
    if (file) files.add(resolve(file));
  await listLogs(join(repo.storage.logsDir, change.id));
  const logs: { name: string; text: string }[] = [];
  for (const file of [...files].sort()) {
    if (!inside(file)) {
      logger.warn(`Proof bundle of ${change.id}: skipped ${file}, which is outside the repository's storage.`);
      continue;
    }
    const text = await readCapped(file).catch((error: unknown) => {
      logger.warn(`Proof bundle of ${change.id}: could not read ${file}: ${(error as Error).message}`);
      return undefined;
    });
    if (text !== undefined) logs.push({ name: basename(file), text });
  }
  return logs;
}

async function readCapped(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size <= MAX_BUNDLED_LOG_BYTES) return (await handle.readFile()).toString('utf8');
    const buffer = Buffer.alloc(MAX_BUNDLED_LOG_BYTES);
    await handle.read(buffer, 0, buffer.length, size - buffer.length);
    return `[agent-lanes: the log has ${size} bytes; only its last ${MAX_BUNDLED_LOG_BYTES} are in this bundle]\n${buffer.toString('utf8')}`;
  } finally {
    await handle.close();
  }
}

/**
 * One AuditSink per open repository while agentLanes.audit.sinkEndpoint is
 * set: each log is shipped from its durable cursor, woken by every append.
 * Changes are applied one after another, so a stopping sink has released its
 * lock before the next one for the same log starts.
 */
export class AuditSinks implements vscode.Disposable {
  private endpoint = '';
  private valid = false;
  private readonly running = new Map<string, { repo: RepoContext; sink: AuditSink }>();
  private warned: string | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly services: AuditCommandServices) {}

  private enqueue(work: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(work).catch((error: unknown) => this.services.logger.error('Audit sink', error));
    return this.queue;
  }

  /** Applies the setting: stops every sink and starts them again for the new endpoint. */
  configure(endpoint: string, repos: RepoContext[]): Promise<void> {
    return this.enqueue(async () => {
      const next = endpoint.trim();
      if (next === this.endpoint) return;
      await this.stopAll();
      this.endpoint = next;
      this.valid = false;
      if (!next) return;
      const checked = validateSinkEndpoint(next);
      if ('error' in checked) {
        this.services.logger.warn(`Audit sink not started: ${checked.error}`);
        if (this.warned !== next) {
          this.warned = next;
          void vscode.window
            .showWarningMessage(`Agent Lanes does not ship the audit log: ${checked.error}`, 'Open Settings')
            .then((choice) => {
              if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', 'agentLanes.audit.sinkEndpoint');
            });
        }
        return;
      }
      this.valid = true;
      await this.startMissing(repos);
    });
  }

  /** Starts a sink for each repository that has none; stops those of repositories that closed. */
  sync(repos: RepoContext[]): Promise<void> {
    return this.enqueue(() => this.startMissing(repos));
  }

  /** After the token changed: new connections, and no back-off left from a refused token. */
  restart(repos: RepoContext[]): Promise<void> {
    return this.enqueue(async () => {
      await this.stopAll();
      await this.startMissing(repos);
    });
  }

  notify(root: string): void {
    this.running.get(root)?.sink.notify();
  }

  private async startMissing(repos: RepoContext[]): Promise<void> {
    for (const [root, entry] of this.running) {
      if (repos.includes(entry.repo)) continue;
      this.running.delete(root);
      await this.stop(entry.sink);
    }
    if (!this.valid) return;
    for (const repo of repos) {
      if (this.running.has(repo.root)) continue;
      const audit = repo.lanes.context.audit;
      const sink = new AuditSink({
        endpoint: this.endpoint,
        auditFile: audit.file,
        repoKey: audit.repoKey,
        getAuthorization: async () => (await this.services.secrets.get(SINK_AUTHORIZATION_SECRET)) || undefined,
        logger: this.services.logger,
      });
      let failing = false;
      sink.onDidChangeStatus((status) => {
        if (status.consecutiveFailures > 0) failing = true;
        else if (failing && status.state !== 'waiting') {
          failing = false;
          this.services.logger.info(
            `Audit sink ${this.endpoint} reachable again for ${repo.name}: events up to ${status.acknowledgedSeq} acknowledged.`,
          );
        }
      });
      sink.start();
      this.running.set(repo.root, { repo, sink });
      this.services.logger.info(`Audit sink: shipping the audit log of ${repo.name} to ${this.endpoint}.`);
    }
  }

  private async stopAll(): Promise<void> {
    const sinks = [...this.running.values()].map((entry) => entry.sink);
    this.running.clear();
    await Promise.all(sinks.map((sink) => this.stop(sink)));
  }

  private async stop(sink: AuditSink): Promise<void> {
    await sink.stop().catch((error: unknown) => this.services.logger.error('Stopping the audit sink', error));
  }

  dispose(): void {
    void this.enqueue(() => this.stopAll());
  }
}

export function registerAuditCommands(context: vscode.ExtensionContext, services: Omit<AuditCommandServices, 'secrets'>): AuditCommands {
  const commands = new AuditCommands({ ...services, secrets: context.secrets });
  const fail = (doing: string) => (error: unknown) => reportError(services.logger, `${doing} failed: ${(error as Error).message}`, error);
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
  );
  return commands;
}
