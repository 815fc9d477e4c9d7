import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import * as vscode from 'vscode';
import type { DecisionRecord } from '../../core/decision';
import type { Logger } from '../../core/logger';
import { ACTION_LABELS, type PolicyAction } from '../../core/policy/evaluate';
import { type EffectivePolicy, mergePolicies, refForOrigin, renderEffectivePolicyYaml } from '../../core/policy/merge';
import { formatReplayMarkdown, type ReplayReport } from '../../core/policy/replay';
import { parsePolicy } from '../../core/policy/schema';
import { formatPolicyTestRun, runPolicyTests, type PolicyTestRun } from '../../core/policy/testRunner';
import { headCommit } from '../../infra/git/queries';
import type { PolicyState } from '../../infra/policy/policyService';
import { replayAuditFiles } from '../../infra/policy/replayAudit';
import { Commands } from '../constants';
import type { ChangeTarget, CommandKit } from '../commandKit';
import { escapeMarkdown, mdCell, mdCode } from '../../core/markdown';
import { GeneratedDocuments } from '../generatedDocuments';
import { decisionsOnRecord, formatEventTime } from '../audit/historyView';
import type { LanesNode } from '../lanesTree';
import type { PolicyController } from './policyController';
import type { RepoContext, RepositoryRegistry } from '../repositories';

const POLICY_DOC_SCHEME = 'agent-lanes-policy';

export interface PolicyCommandServices {
  logger: Logger;
  registry: RepositoryRegistry;
  policy: PolicyController;
  kit: CommandKit;
  /** The Lanes view: its message says when policy stops work (fail closed, kill switch). */
  view: vscode.TreeView<LanesNode>;
}

export interface ShowEffectivePolicyArgs {
  /** A repository root: its policy at HEAD. */
  repository?: string;
  /** `org`: the org (or built-in) policy with the user's settings, without a repository. */
  level?: 'repository' | 'org';
}

export interface TestPolicyArgs {
  policyFile?: string;
  casesFile?: string;
}

export interface ReplayPolicyArgs {
  /** The candidate policy document (YAML or JSON). */
  candidateFile?: string;
  /** A repository root: its audit log is replayed. */
  repository?: string;
}

/** What "Agent Lanes: Replay Policy…" returns (tests and scripts read it). */
export type PolicyReplaySummary = ({ ok: true; document: string } & ReplayReport) | { ok: false; errors: string[] };

/** What "Agent Lanes: Test Policy" returns (tests and scripts read it). */
export type PolicyTestSummary =
  | {
      ok: true;
      policyRef: string;
      passed: number;
      failed: number;
      results: { name: string; passed: boolean; problems: string[]; effect: string }[];
    }
  | { ok: false; errors: string[] };

const SWITCH_WORDS: Record<'disableDrafts' | 'disableSandbox' | 'disablePullRequests' | 'disableActions', string> = {
  disableDrafts: 'new drafts and agent runs',
  disableSandbox: 'sandbox runs',
  disablePullRequests: 'pushes and pull requests',
  disableActions: 'production actions',
};

/**
 * What the Lanes view says above the lanes when policy stops work: the
 * fail-closed state, a kill switch, or an invalid user policy. Undefined when
 * nothing is stopped.
 */
function policyViewMessage(state: PolicyState, effective: EffectivePolicy, userErrors: readonly string[]): string | undefined {
  if (state.kind === 'failClosed') {
    return `Policy unavailable: only drafts are allowed (no sandbox runs, pushes or pull requests). ${state.reason}`;
  }
  const parts: string[] = [];
  const killSwitch = effective.policy.killSwitch;
  const on = (Object.keys(SWITCH_WORDS) as (keyof typeof SWITCH_WORDS)[]).filter((key) => killSwitch[key]);
  if (on.length) {
    const message = killSwitch.message ? ` ${killSwitch.message}` : '';
    const by = refForOrigin(effective, effective.origins[`killSwitch.${on[0]}`]);
    parts.push(`Kill switch on (${by}): ${on.map((key) => SWITCH_WORDS[key]).join(', ')} are stopped.${message}`);
  }
  if (userErrors.length) parts.push(`Your setting agentLanes.policy.user is invalid, so every action is blocked: ${userErrors[0]}`);
  return parts.length ? parts.join(' ') : undefined;
}

/**
 * Words, not emoji: Debian's Chromium (and many Linux desktops) has no emoji
 * font, so "✅" came out as a missing-glyph box in the heading.
 */
const EFFECT_WORDS: Record<string, string> = { allow: 'allowed', requireApproval: 'needs approval', block: 'blocked' };

function actionLabel(action: string): string {
  return ACTION_LABELS[action as PolicyAction] ?? action;
}

/**
 * The policy commands in the editor: Show Effective Policy, Explain Decision,
 * Test Policy, and the Lanes view's message about fail-closed and kill-switch states.
 */
export class PolicyCommands implements vscode.Disposable {
  private readonly docs = new GeneratedDocuments(POLICY_DOC_SCHEME);
  private results: vscode.OutputChannel | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly services: PolicyCommandServices) {
    const { service } = services.policy;
    const onPolicyChange = () => {
      this.updateViewMessage();
      this.docs.refresh();
    };
    this.disposables.push(this.docs, service.onDidChangeState(onPolicyChange), service.onDidChangeKillSwitch(onPolicyChange));
    this.updateViewMessage();
  }

  /** Sets or clears the Lanes view's message from the policy state. */
  updateViewMessage(): void {
    const { service } = this.services.policy;
    this.services.view.message = policyViewMessage(service.state, service.effective, service.userPolicyErrors);
  }

  // ---- Show Effective Policy ----

  async showEffectivePolicy(args: ShowEffectivePolicyArgs = {}): Promise<vscode.Uri | undefined> {
    const { registry, policy } = this.services;
    await registry.ensureDiscovered();
    await policy.ensureStarted();
    let repo: RepoContext | undefined;
    if (args.repository) {
      repo = registry.byRoot(args.repository);
      if (!repo) {
        void vscode.window.showErrorMessage(`${args.repository} is not one of the open repositories.`);
        return undefined;
      }
    } else if (args.level !== 'org' && registry.repositories().length) {
      type Item = vscode.QuickPickItem & { repo?: RepoContext };
      const items: Item[] = [
        ...registry.repositories().map((r): Item => ({
          label: `$(repo) ${r.name}`,
          description: 'org, then .lanes/policy.yaml at HEAD, then your settings',
          detail: r.root,
          repo: r,
        })),
        { label: '$(organization) Org and user settings only', description: 'without a repository level' },
      ];
      const picked = await vscode.window.showQuickPick(items, { placeHolder: 'Show the effective policy for…' });
      if (!picked) return undefined;
      repo = picked.repo;
    }
    const uri = repo
      ? this.docs.define(`/${repo.storage.repoKey.slice(0, 12)}/Effective Policy (${repo.name}).yaml`, () => this.renderEffective(repo))
      : this.docs.define('/org/Effective Policy (org and user).yaml', () => this.renderEffective(undefined));
    // The .yaml name gives it YAML highlighting; the scheme makes it read-only.
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), { preview: true });
    return uri;
  }

  private async renderEffective(repo: RepoContext | undefined): Promise<string> {
    const { service } = this.services.policy;
    const state = service.state;
    const header: string[] = [];
    if (state.kind === 'local')
      header.push('State: the built-in local policy (no org policy endpoint is set in agentLanes.policy.endpoint).');
    else if (state.kind === 'org')
      header.push(
        `State: org policy ${state.policyRef}, ${state.source === 'cache' ? 'from the local cache (the endpoint could not be reached)' : 'fetched from the endpoint'} at ${state.fetchedAt}.`,
      );
    else
      header.push(
        `State: FAIL CLOSED. ${state.reason}`,
        'Only drafts are allowed (new drafts and agent runs, under the built-in policy below); every gate, sandbox run, push and pull request is blocked.',
      );
    if (state.kind !== 'failClosed' && state.warning) header.push(`Warning: ${state.warning}`);

    let repository: { repoRoot: string; baseSha: string } | undefined;
    if (repo) {
      const head = await headCommit(repo.root);
      if (head) {
        repository = { repoRoot: repo.root, baseSha: head };
        header.push(
          `Repository: ${repo.root}`,
          `Its .lanes/policy.yaml is read from HEAD, commit ${head.slice(0, 12)}, not from the working tree. A change is decided with the file at its own base commit.`,
        );
      } else {
        header.push(`Repository: ${repo.root} has no commit yet, so no .lanes/policy.yaml applies.`);
      }
    } else {
      header.push(
        'Without a repository: the org (or built-in) policy and your settings. A repository may restrict it further with .lanes/policy.yaml.',
      );
    }
    const result = await service.effectiveFor(repository);
    const comment = (lines: string[]) => lines.map((line) => `# ${line}`).join('\n');
    if (!result.ok) {
      return `${comment([...header, '', `The effective policy cannot be computed: ${result.reason}.`, 'Until this is fixed, every action on changes of this repository is blocked.'])}\n`;
    }
    return `${comment(header)}\n#\n${renderEffectivePolicyYaml(result.effective)}`;
  }

  // ---- Explain Decision ----

  async explainDecision(target: ChangeTarget): Promise<vscode.Uri | undefined> {
    const found = await this.services.kit.resolveTarget(
      target,
      (c) => c.lastDecision !== undefined,
      'Explain the policy decisions of which change?',
    );
    if (!found) return undefined;
    const { repo, change } = found;
    if (!change.lastDecision) {
      const evidence = await repo.evidence.read(change.id);
      if (evidence.kind !== 'ok' || evidence.evidence.decisions.length === 0) {
        void vscode.window.showInformationMessage(
          `Policy has not decided anything about change ${change.id} yet: a decision is made when the change moves to the next lane or runs a side effect.`,
        );
        return undefined;
      }
    }
    const uri = this.docs.define(`/${repo.storage.repoKey.slice(0, 12)}/decisions/Policy Decisions ${change.id}.md`, () =>
      this.renderDecisions(repo, change.id),
    );
    await this.docs.showMarkdown(uri);
    return uri;
  }

  private async renderDecisions(repo: RepoContext, changeId: string): Promise<string> {
    const change = repo.store.get(changeId);
    if (!change) return `# Policy decisions\n\nThere is no change ${changeId} in ${repo.name} any more.\n`;
    const evidence = await repo.evidence.read(changeId);
    const newestFirst = decisionsOnRecord(change, evidence.kind === 'ok' ? evidence.evidence : undefined).reverse();
    const latest = change.lastDecision ?? newestFirst[0];
    const others = newestFirst.filter((d) => d.decisionId !== latest?.decisionId);

    const out: string[] = [`# Policy decisions: ${escapeMarkdown(change.title)}`, ''];
    out.push(
      `Change ${mdCode(change.id)} · ${change.lane} · base ${mdCode(change.baseRef)} (${change.baseSha.slice(0, 10)}) · agent ${escapeMarkdown(change.agentId)}`,
      '',
    );
    if (evidence.kind === 'invalid') out.push(`> The change's evidence could not be read: ${escapeMarkdown(evidence.message)}`, '');
    if (latest) out.push(...this.decisionSection(latest, 'Latest decision'));
    for (const decision of others) out.push(...this.decisionSection(decision, 'Also on record'));

    const history = await repo.lanes.context.audit.eventsFor(changeId).catch((error: unknown) => {
      this.services.logger.error(`Reading the audit events of change ${changeId}`, error);
      return undefined;
    });
    const decided = history?.filter((event) => event.action === 'policy.decision') ?? [];
    out.push('## Every decision in the audit log', '');
    if (!history) out.push('The audit log could not be read; see "Agent Lanes: Show Log".', '');
    else if (!decided.length) out.push('None yet.', '');
    else {
      out.push('| Time (UTC) | Action | Effect | Explanation |', '|---|---|---|---|');
      for (const event of decided) {
        const details = event.details as { action?: string; effect?: string; explanation?: string };
        out.push(
          `| ${formatEventTime(event.at)} | ${mdCell(actionLabel(details.action ?? '?'))} | ${mdCell(details.effect ?? '?')} | ${mdCell(details.explanation ?? '', 600)} |`,
        );
      }
      out.push('');
    }
    return out.join('\n');
  }

  private decisionSection(decision: DecisionRecord, heading: string): string[] {
    const out = [
      `## ${heading}: ${escapeMarkdown(actionLabel(decision.action))} — ${EFFECT_WORDS[decision.effect] ?? decision.effect}`,
      '',
    ];
    out.push(`> ${escapeMarkdown(decision.explanation)}`, '');
    out.push('| | |', '|---|---|');
    out.push(`| Action | ${mdCode(decision.action)} (${mdCell(actionLabel(decision.action))}) |`);
    out.push(`| Effect | ${decision.effect} |`);
    out.push(`| Decided at | ${decision.at} |`);
    out.push(`| Subject | ${mdCell(decision.subject)} |`);
    out.push(`| Decision id | ${mdCode(decision.decisionId)} |`);
    if (decision.policyHash) out.push(`| Policy hash | ${mdCode(`sha256:${decision.policyHash}`)} |`);
    out.push('');
    if (decision.matchedRules.length) {
      out.push('### Matched rules', '', '| Effect | Policy | Rule | Why | Paths |', '|---|---|---|---|---|');
      for (const rule of decision.matchedRules) {
        out.push(
          `| ${rule.effect} | ${mdCell(rule.policy)} | ${mdCell(rule.rule)} | ${mdCell(rule.reason ?? '', 600)} | ${mdCell((rule.paths ?? []).join(', '))} |`,
        );
      }
      out.push('');
    } else {
      out.push('No rule restricted this action.', '');
    }
    if (decision.effect === 'block') {
      const policies = [...new Set(decision.matchedRules.filter((rule) => rule.effect === 'block').map((rule) => rule.policy))];
      out.push(
        `**What to do:** the change cannot take this step as it is. Change the draft so that no blocking rule matches (for a path rule, leave those paths alone), or ask the owners of ${escapeMarkdown(policies.join(', ') || 'the policy')} to change the rule. "Agent Lanes: Show Effective Policy" shows every rule and the level it came from.`,
        '',
      );
    } else if (decision.effect === 'requireApproval') {
      out.push(
        '**What to do:** a reviewer must approve the change in its review (see the rules above for who); then the step is decided again.',
        '',
      );
    }
    return out;
  }

  // ---- Test Policy ----

  async testPolicy(args: TestPolicyArgs = {}): Promise<PolicyTestSummary | undefined> {
    let policyFile = args.policyFile;
    let casesFile = args.casesFile;
    const active = vscode.window.activeTextEditor?.document;
    if ((!policyFile || !casesFile) && active?.uri.scheme === 'file' && /\.(ya?ml|json)$/i.test(active.uri.fsPath)) {
      const text = active.getText();
      if (!casesFile && /^cases\s*:/m.test(text)) casesFile = active.uri.fsPath;
      else if (!policyFile && /^\s*"?apiVersion"?\s*:/m.test(text)) policyFile = active.uri.fsPath;
    }
    if (!policyFile && casesFile) policyFile = guessSibling(casesFile, 'policy');
    if (policyFile && !casesFile) casesFile = guessSibling(policyFile, 'cases');
    policyFile ??= await pickFile('Test Policy: the policy to test (YAML or JSON)', 'Use This Policy');
    if (!policyFile) return undefined;
    casesFile ??= await pickFile('Test Policy: the cases file (YAML with "cases:")', 'Run These Cases', dirname(policyFile));
    if (!casesFile) return undefined;

    const [policyText, casesText] = [await readForTest(policyFile, 'policy'), await readForTest(casesFile, 'cases file')];
    const channel = (this.results ??= vscode.window.createOutputChannel('Agent Lanes: Policy Tests'));
    channel.clear();
    const showResults = (choice: string | undefined) => {
      if (choice === 'Show Results') channel.show(true);
    };
    if ('error' in policyText || 'error' in casesText) {
      const error = 'error' in policyText ? policyText.error : (casesText as { error: string }).error;
      channel.appendLine(error);
      void vscode.window.showErrorMessage(error);
      return { ok: false, errors: [error] };
    }
    let run: PolicyTestRun;
    try {
      run = runPolicyTests({ text: policyText.text, source: displayPath(policyFile) }, casesText.text, displayPath(casesFile));
    } catch (error) {
      this.services.kit.showError(error, 'Running the policy tests');
      return { ok: false, errors: [(error as Error).message] };
    }
    const unsaved = [policyText, casesText].some((read) => read.unsaved) ? ' (with the unsaved changes in the editor)' : '';
    if (!run.ok) {
      channel.appendLine(`No case was run${unsaved}: fix these problems first.`);
      for (const error of run.errors) channel.appendLine(`  ${error}`);
      channel.show(true);
      void vscode.window
        .showErrorMessage(
          `Policy tests: no case was run. ${run.errors[0]}${run.errors.length > 1 ? ` (and ${run.errors.length - 1} more)` : ''}`,
          'Show Results',
        )
        .then(showResults);
      return { ok: false, errors: run.errors };
    }
    for (const line of formatPolicyTestRun(run, displayPath(policyFile), displayPath(casesFile))) channel.appendLine(line);
    if (unsaved) channel.appendLine(`Read${unsaved}.`);
    channel.show(true);
    const firstFailure = run.results.find((result) => !result.passed);
    if (firstFailure) {
      void vscode.window
        .showWarningMessage(
          `Policy tests of ${run.policyRef}: ${run.passed} passed, ${run.failed} failed; first failure: "${firstFailure.name}": ${firstFailure.problems[0] ?? ''}`,
          'Show Results',
        )
        .then(showResults);
    } else {
      void vscode.window
        .showInformationMessage(`Policy tests of ${run.policyRef}: all ${run.passed} passed.`, 'Show Results')
        .then(showResults);
    }
    return {
      ok: true,
      policyRef: run.policyRef,
      passed: run.passed,
      failed: run.failed,
      results: run.results.map((result) => ({
        name: result.name,
        passed: result.passed,
        problems: result.problems,
        effect: result.decision.effect,
      })),
    };
  }

  // ---- Replay Policy ----

  /**
   * Replays the decisions in a repository's audit log against a candidate
   * policy (the same core as `agent-lanes policy replay`) and shows the
   * decisions that would flip in a Markdown document.
   */
  async replayPolicy(args: ReplayPolicyArgs = {}): Promise<PolicyReplaySummary | undefined> {
    const { registry } = this.services;
    await registry.ensureDiscovered();
    let repo: RepoContext | undefined;
    if (args.repository) {
      repo = registry.byRoot(args.repository);
      if (!repo) {
        void vscode.window.showErrorMessage(`${args.repository} is not one of the open repositories.`);
        return undefined;
      }
    } else {
      const repositories = registry.repositories();
      if (!repositories.length) {
        void vscode.window.showErrorMessage('Replay Policy needs an open repository: its audit log holds the decisions to replay.');
        return undefined;
      }
      repo = repositories.length === 1 ? repositories[0] : await pickRepository(repositories);
      if (!repo) return undefined;
    }
    const candidateFile =
      args.candidateFile ?? (await pickFile('Replay Policy: the candidate policy (YAML or JSON)', 'Replay Against This Policy'));
    if (!candidateFile) return undefined;
    const read = await readForTest(candidateFile, 'policy');
    const channel = (this.results ??= vscode.window.createOutputChannel('Agent Lanes: Policy Tests'));
    if ('error' in read) {
      void vscode.window.showErrorMessage(read.error);
      return { ok: false, errors: [read.error] };
    }
    const parsed = parsePolicy(read.text, displayPath(candidateFile));
    if (!parsed.ok) {
      channel.clear();
      channel.appendLine(`${displayPath(candidateFile)} is not a valid policy: nothing was replayed.`);
      for (const error of parsed.errors) channel.appendLine(`  ${error}`);
      channel.show(true);
      void vscode.window.showErrorMessage(
        `Replay Policy: ${displayPath(candidateFile)} is not a valid policy, so nothing was replayed. ${parsed.errors[0]}${parsed.errors.length > 1 ? ` (and ${parsed.errors.length - 1} more)` : ''}`,
      );
      return { ok: false, errors: parsed.errors };
    }
    const effective = mergePolicies({ level: 'org', document: parsed.policy, source: displayPath(candidateFile) });
    const audit = repo.lanes.context.audit;
    await audit.flush();
    const report = await replayAuditFiles(effective, [audit.file]);
    const document = formatReplayMarkdown(report, `the audit log of ${repo.name}`);
    const uri = this.docs.define(`/${repo.storage.repoKey.slice(0, 12)}/Policy Replay (${report.candidate.policyRef}).md`, () =>
      Promise.resolve(document),
    );
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), { preview: true });
    return { ok: true, document, ...report };
  }

  dispose(): void {
    this.results?.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

/** `policy.yaml` ↔ `policy.cases.yaml`, the layout the sample in test/fixtures/policy uses. */
function guessSibling(file: string, want: 'policy' | 'cases'): string | undefined {
  const ext = extname(file);
  const stem = basename(file, ext);
  const candidate =
    want === 'cases'
      ? join(dirname(file), `${stem}.cases${ext === '.json' ? '.yaml' : ext}`)
      : stem.endsWith('.cases')
        ? join(dirname(file), `${stem.slice(0, -'.cases'.length)}${ext}`)
        : undefined;
  return candidate && existsSync(candidate) ? candidate : undefined;
}

async function pickRepository(repositories: readonly RepoContext[]): Promise<RepoContext | undefined> {
  const picked = await vscode.window.showQuickPick(
    repositories.map((r) => ({ label: `$(repo) ${r.name}`, detail: r.root, repo: r })),
    { placeHolder: 'Replay the audit log of…' },
  );
  return picked?.repo;
}

async function pickFile(title: string, openLabel: string, folder?: string): Promise<string | undefined> {
  const defaultUri = folder ? vscode.Uri.file(folder) : vscode.workspace.workspaceFolders?.[0]?.uri;
  const picked = await vscode.window.showOpenDialog({
    title,
    openLabel,
    canSelectMany: false,
    filters: { 'Policy files': ['yaml', 'yml', 'json'] },
    ...(defaultUri ? { defaultUri } : {}),
  });
  return picked?.[0]?.fsPath;
}

/** The file's text; an open editor's text when it has unsaved changes, so what is tested is what is on screen. */
async function readForTest(file: string, what: string): Promise<{ text: string; unsaved: boolean } | { error: string }> {
  const open = vscode.workspace.textDocuments.find((doc) => doc.uri.scheme === 'file' && doc.uri.fsPath === file);
  if (open?.isDirty) return { text: open.getText(), unsaved: true };
  try {
    return { text: await readFile(file, 'utf8'), unsaved: false };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'there is no such file' : code === 'EISDIR' ? 'it is a folder' : (error as Error).message;
    return {
      error: `Cannot read the ${what} ${file}: ${why}. Pick a ${what === 'policy' ? 'policy document (YAML or JSON)' : 'cases file (YAML with "cases:")'}.`,
    };
  }
}

function displayPath(file: string): string {
  return vscode.workspace.asRelativePath(file, false);
}

export function registerPolicyCommands(context: vscode.ExtensionContext, services: PolicyCommandServices): PolicyCommands {
  const commands = new PolicyCommands(services);
  context.subscriptions.push(
    commands,
    vscode.commands.registerCommand(Commands.showEffectivePolicy, (args?: ShowEffectivePolicyArgs) =>
      commands
        .showEffectivePolicy(args && typeof args === 'object' && !('kind' in args) ? args : {})
        .catch((error: unknown) => services.kit.showError(error, 'Showing the effective policy')),
    ),
    vscode.commands.registerCommand(Commands.explainDecision, (target?: ChangeTarget) =>
      commands.explainDecision(target).catch((error: unknown) => services.kit.showError(error, 'Explaining the decision')),
    ),
    vscode.commands.registerCommand(Commands.replayPolicy, (args?: ReplayPolicyArgs) =>
      commands
        .replayPolicy(args && typeof args === 'object' ? args : {})
        .catch((error: unknown) => services.kit.showError(error, 'Replaying the policy')),
    ),
    vscode.commands.registerCommand(Commands.testPolicy, (args?: TestPolicyArgs) =>
      commands
        .testPolicy(args && typeof args === 'object' ? args : {})
        .catch((error: unknown) => services.kit.showError(error, 'Testing the policy')),
    ),
  );
  return commands;
}
