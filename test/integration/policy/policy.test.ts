import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { AuditEvent } from '../../../src/core/audit/audit';
import type { Change } from '../../../src/core/change';
import { changeFacts, decide } from '../../../src/infra/lanes/laneContext';
import type { PolicyReplaySummary, PolicyTestSummary } from '../../../src/vscode/policy/policyCommands';
import type { RepoContext } from '../../../src/vscode/repositories';
import { EXTENSION_ID, lanesApi, waitFor } from '../util';

const POLICY_REF = 'acme-platform@2026.11.1';
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'T',
      GIT_AUTHOR_EMAIL: 't@example.com',
      GIT_COMMITTER_NAME: 'T',
      GIT_COMMITTER_EMAIL: 't@example.com',
    },
  }).trim();

/** A real org policy endpoint on this machine whose answer the tests change. */
class PolicyEndpoint {
  body = '';
  requests = 0;
  private server: Server | undefined;
  port = 0;

  async start(port = 0): Promise<void> {
    this.server = createServer((request: IncomingMessage, response: ServerResponse) => {
      this.requests++;
      request.resume();
      response.writeHead(200, { 'Content-Type': 'application/yaml' });
      response.end(this.body);
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  url(path = '/policy.yaml'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }
}

async function setEndpoint(url: string | undefined): Promise<void> {
  await vscode.workspace.getConfiguration('agentLanes').update('policy.endpoint', url, vscode.ConfigurationTarget.Global);
}

async function settled(changeId: string): Promise<Change> {
  const api = await lanesApi();
  return waitFor(
    () => {
      const found = api.registry.findChange(changeId)?.change;
      return found?.agentRun && found.agentRun.state !== 'running' ? found : undefined;
    },
    `the agent of ${changeId} to finish`,
    45_000,
  );
}

async function textOf(uri: vscode.Uri | undefined): Promise<string> {
  assert.ok(uri, 'the command opened a document');
  return (await vscode.workspace.openTextDocument(uri)).getText();
}

async function lastEvents(repo: RepoContext, count: number): Promise<AuditEvent[]> {
  const { events } = await repo.lanes.context.audit.readAll();
  return events.slice(-count);
}

describe('Policy in a real VS Code', () => {
  const endpoint = new PolicyEndpoint();
  let samplePolicy: string;
  let fixtures: string;
  let repo: RepoContext;
  let scratch: string;

  before(async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID)!;
    fixtures = join(extension.extensionPath, 'test', 'fixtures', 'policy');
    samplePolicy = readFileSync(join(fixtures, 'sample-org-policy.yaml'), 'utf8');
    scratch = mkdtempSync(join(tmpdir(), 'lanes-policy-it-'));
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    const api = await lanesApi();
    await api.registry.ensureDiscovered();
    repo = api.registry.repositories()[0]!;
    endpoint.body = samplePolicy;
    await endpoint.start();
  });

  after(async () => {
    await setEndpoint(undefined);
    await endpoint.stop();
  });

  it('follows the org policy at agentLanes.policy.endpoint: the status bar names it', async () => {
    const api = await lanesApi();
    await setEndpoint(endpoint.url());
    await waitFor(() => api.statusBar.text.includes(POLICY_REF), `the status bar to show ${POLICY_REF} (it shows "${api.statusBar.text}")`);
    assert.equal(api.statusBar.text, `$(shield) Lanes: ${POLICY_REF}`);
    assert.ok(endpoint.requests >= 1);
    assert.equal(api.view.message, undefined, 'the Lanes view has nothing to warn about');
  });

  it('Show Effective Policy: read-only YAML, each field with its level, the repository read at HEAD', async () => {
    // A repository policy that restricts (db/**) and tries to loosen (maxFiles 100 > the org's 40).
    mkdirSync(join(repo.root, '.lanes'), { recursive: true });
    writeFileSync(
      join(repo.root, '.lanes', 'policy.yaml'),
      'apiVersion: agentlanes.dev/v1\npathRules:\n  - { glob: "db/**", effect: block, reason: Only the DBAs change the schema. }\nblastRadius: { maxFiles: 100 }\n',
    );
    git(repo.root, 'add', '.lanes/policy.yaml');
    git(repo.root, 'commit', '-q', '-m', 'Repository policy');
    const head = git(repo.root, 'rev-parse', 'HEAD');

    const uri = await vscode.commands.executeCommand<vscode.Uri>('agentLanes.showEffectivePolicy', { repository: repo.root });
    assert.equal(uri?.scheme, 'agent-lanes-policy');
    const text = await textOf(uri);
    assert.match(text, new RegExp(`State: org policy ${POLICY_REF.replace(/\./g, '\\.')}, fetched from the endpoint`));
    assert.ok(text.includes(`read from HEAD, commit ${head.slice(0, 12)}, not from the working tree`), text.slice(0, 800));
    assert.match(text, /glob: infra\/\*\* # org \(acme-platform@2026\.11\.1\)/);
    assert.match(text, /glob: db\/\*\* # repository \(repository@[0-9a-f]{12}\)/);
    assert.match(text, /maxFiles: 40 # org/, 'the org limit holds');
    assert.match(text, /Ignored attempts to loosen the policy:\n#\s+- .*blastRadius\.maxFiles/);
    const doc = await vscode.workspace.openTextDocument(uri!);
    assert.equal(doc.languageId, 'yaml');

    const org = await textOf(await vscode.commands.executeCommand<vscode.Uri>('agentLanes.showEffectivePolicy', { level: 'org' }));
    assert.match(org, /Without a repository/);
    assert.doesNotMatch(org, /db\/\*\*/, 'the org level has no repository rules');
  });

  it('a draft whose agent writes infra/main.tf is blocked at Draft → Sandbox, and Explain Decision says why', async () => {
    const change = await vscode.commands.executeCommand<Change>('agentLanes.newDraft', {
      task: 'Add a Terraform module\n@write infra/main.tf resource "null_resource" "x" {}',
      agentId: 'scripted',
    });
    assert.ok(change, 'the draft was created under the org policy');
    const done = await settled(change.id);
    assert.equal(done.agentRun?.state, 'succeeded', done.agentRun?.message);
    const evidence = await repo.evidence.read(change.id);
    assert.equal(evidence.kind, 'ok');
    const facts = changeFacts(done, evidence.kind === 'ok' ? evidence.evidence : undefined);
    await assert.rejects(
      decide(repo.lanes.context, 'gate.draftToSandbox', facts, done),
      (error: Error & { decision?: { effect: string; matchedRules: { rule: string }[] } }) => {
        assert.equal(error.name, 'PolicyDeniedError');
        assert.equal(error.decision?.effect, 'block');
        assert.match(error.message, /infra\/main\.tf matches "infra\/\*\*"/);
        return true;
      },
    );
    assert.equal(repo.store.get(change.id)?.lastDecision?.action, 'gate.draftToSandbox', 'the decision is kept with the change');
    // The Lanes view: the blocked draft leads with "blocked:", and its reason in full is a row under it that opens Explain Decision.
    const api = await lanesApi();
    const stored = repo.store.get(change.id)!;
    const node = { kind: 'change' as const, repo, change: stored };
    assert.match(String(api.tree.getTreeItem(node).description), /^blocked: /);
    assert.match(String(api.tree.getTreeItem(node).contextValue), /\.blocked$/);
    const why = (await api.tree.getChildren(node)).map((child) => api.tree.getTreeItem(child));
    assert.equal(why.length, 1);
    assert.match(String(why[0]!.label), /^Blocked: .*Terraform pipeline/);
    assert.equal(why[0]!.command?.command, 'agentLanes.explainDecision');

    const uri = await vscode.commands.executeCommand<vscode.Uri>('agentLanes.explainDecision', { changeId: change.id });
    const markdown = await textOf(uri);
    assert.match(markdown, /pathRules\\\[0\\\] "infra\/\\\*\\\*"/, 'Markdown characters in rules are escaped');
    const text = markdown.replace(/\\([\\`*_{}[\]<>#|!])/g, '$1');
    assert.match(text, /## Latest decision: Draft → Sandbox — blocked/);
    assert.match(text, /> Blocked: Draft → Sandbox: infra\/main\.tf matches/);
    assert.match(text, /\| block \| acme-platform@2026\.11\.1 \| pathRules\[0\] "infra\/\*\*" \| .*Terraform pipeline.* \| infra/);
    assert.match(text, /\*\*What to do:\*\*/);
    assert.match(text, /## Also on record: start an agent — allowed/, 'the earlier decision of the evidence is there too');
    assert.doesNotMatch(text, /\p{Extended_Pictographic}/u, 'no emoji: Linux browsers without an emoji font draw a box');
    assert.match(text, /## Every decision in the audit log[\s\S]*\| Draft → Sandbox \| block \|/);
  });

  it('Explain Decision says so when policy has decided nothing about a change', async () => {
    const api = await lanesApi();
    const change = await vscode.commands.executeCommand<Change>('agentLanes.newDraft', {
      task: 'Chat draft without decisions',
      agentId: 'vscode-chat',
    });
    assert.ok(change);
    // createDraft is decided before the change exists, so the change has no decision on record.
    assert.equal(api.registry.findChange(change.id)?.change.lastDecision, undefined);
    assert.equal(await vscode.commands.executeCommand('agentLanes.explainDecision', { changeId: change.id }), undefined);
    assert.equal(await vscode.commands.executeCommand('agentLanes.explainDecision', { changeId: 'nosuchid' }), undefined);
  });

  it('Test Policy runs a cases file against a policy and reports each case', async () => {
    const policyFile = join(fixtures, 'sample-org-policy.yaml');
    const all = await vscode.commands.executeCommand<PolicyTestSummary>('agentLanes.testPolicy', {
      policyFile,
      casesFile: join(fixtures, 'sample-org-policy.cases.yaml'),
    });
    assert.ok(all?.ok, JSON.stringify(all));
    assert.equal(all.policyRef, POLICY_REF);
    assert.equal(all.failed, 0);
    assert.ok(all.passed >= 10);

    const failing = join(scratch, 'failing.cases.yaml');
    writeFileSync(
      failing,
      'cases:\n  - name: infra is fine (wrong)\n    action: gate.draftToSandbox\n    facts: { files: [infra/main.tf] }\n    expect: { effect: allow }\n  - name: src is fine\n    action: gate.draftToSandbox\n    facts: { files: [src/a.ts] }\n    expect: { effect: allow }\n',
    );
    const one = await vscode.commands.executeCommand<PolicyTestSummary>('agentLanes.testPolicy', { policyFile, casesFile: failing });
    assert.ok(one?.ok);
    assert.deepEqual([one.passed, one.failed], [1, 1]);
    assert.deepEqual(one.results[0], {
      name: 'infra is fine (wrong)',
      passed: false,
      problems: ['expected effect allow, got block'],
      effect: 'block',
    });

    const invalid = join(scratch, 'invalid.cases.yaml');
    writeFileSync(invalid, 'cases:\n  - name: no action\n    expect: { effect: allow }\n');
    const bad = await vscode.commands.executeCommand<PolicyTestSummary>('agentLanes.testPolicy', { policyFile, casesFile: invalid });
    assert.ok(bad && !bad.ok);
    assert.match(bad.errors.join('\n'), /action/);

    const missing = await vscode.commands.executeCommand<PolicyTestSummary>('agentLanes.testPolicy', {
      policyFile,
      casesFile: join(scratch, 'nope.yaml'),
    });
    assert.ok(missing && !missing.ok);
    assert.match(missing.errors[0]!, /Cannot read the cases file .*nope\.yaml: there is no such file/);
  });

  it('Test Policy uses the open cases file and its policy beside it, unsaved edits included', async () => {
    const dir = join(scratch, 'editor');
    mkdirSync(dir);
    writeFileSync(join(dir, 'org.yaml'), samplePolicy);
    writeFileSync(
      join(dir, 'org.cases.yaml'),
      'cases:\n  - { name: lock files, action: gate.draftToSandbox, facts: { files: [a/yarn.lock] }, expect: { effect: block } }\n',
    );
    const doc = await vscode.workspace.openTextDocument(join(dir, 'org.cases.yaml'));
    const editor = await vscode.window.showTextDocument(doc);
    await editor.edit((edit) =>
      edit.insert(
        new vscode.Position(doc.lineCount, 0),
        '  - { name: docs, action: gate.draftToSandbox, facts: { files: [docs/a.md] }, expect: { effect: block } }\n',
      ),
    );
    const run = await vscode.commands.executeCommand<PolicyTestSummary>('agentLanes.testPolicy');
    assert.ok(run?.ok, JSON.stringify(run));
    assert.deepEqual(
      run.results.map((r) => [r.name, r.passed]),
      [
        ['lock files', true],
        ['docs', false],
      ],
    );
    await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
  });

  it("Replay Policy… replays the repository's audit log against a candidate and shows the decisions that would flip", async () => {
    const decision = await decide(repo.lanes.context, 'gate.draftToSandbox', {
      changeId: 'replay01',
      agentId: 'scripted',
      files: [{ path: 'src/replayed.ts', additions: 3, deletions: 0 }],
      evidence: ['filesTouched', 'agent', 'prompt', 'baseAndHead', 'tests'],
    });
    assert.equal(decision.effect, 'allow', decision.explanation);
    const candidateFile = join(scratch, 'candidate.yaml');
    writeFileSync(
      candidateFile,
      samplePolicy.replace(
        /^pathRules:\n/m,
        'pathRules:\n  - glob: "src/replayed.ts"\n    effect: block\n    reason: Frozen for the release.\n',
      ),
    );
    const summary = await vscode.commands.executeCommand<PolicyReplaySummary>('agentLanes.replayPolicy', {
      candidateFile,
      repository: repo.root,
    });
    assert.ok(summary?.ok, JSON.stringify(summary));
    const flip = summary.flips.find((f) => f.subject === 'replay01');
    assert.ok(flip, JSON.stringify(summary.flips));
    assert.deepEqual([flip.action, flip.from, flip.to], ['gate.draftToSandbox', 'allow', 'block']);
    assert.deepEqual(flip.candidateRules[0], { rule: 'pathRules[0] "src/replayed.ts"', effect: 'block', policy: POLICY_REF });
    assert.match(summary.document, /^\| replay01 \| \d+ \| gate.draftToSandbox \| allow → \*\*block\*\* \|/m);
    const shown = vscode.window.activeTextEditor?.document;
    assert.ok(shown && /Policy Replay/.test(shown.uri.path), 'the replay document is open');
    assert.equal(shown.getText(), summary.document);

    const invalid = join(scratch, 'invalid-candidate.yaml');
    writeFileSync(invalid, samplePolicy.replace('effect: block', 'effect: deny'));
    const bad = await vscode.commands.executeCommand<PolicyReplaySummary>('agentLanes.replayPolicy', {
      candidateFile: invalid,
      repository: repo.root,
    });
    assert.ok(bad && !bad.ok, JSON.stringify(bad));
    assert.match(bad.errors.join('\n'), /effect: expected one of "allow", "requireApproval", "block", got "deny"/);
  });

  it('the kill switch at the endpoint stops new drafts and running agents after Refresh Policy, and the Lanes view says so', async () => {
    const api = await lanesApi();
    const sleeper = await vscode.commands.executeCommand<Change>('agentLanes.newDraft', { task: 'Sleep forever', agentId: 'scripted' });
    assert.ok(sleeper);
    await waitFor(() => api.registry.findChange(sleeper.id)?.change.agentRun?.state === 'running', 'the agent to run');

    endpoint.body = samplePolicy
      .replace('disableDrafts: false', 'disableDrafts: true')
      .replace('cancelRunning: false', 'cancelRunning: true\n  message: Frozen during the incident review.');
    await vscode.commands.executeCommand('agentLanes.refreshPolicy');
    assert.match(
      api.view.message ?? '',
      /^Kill switch on \(acme-platform@2026\.11\.1\): new drafts and agent runs are stopped\. Frozen during the incident review\.$/,
    );
    const stopped = await settled(sleeper.id);
    assert.equal(stopped.agentRun?.state, 'cancelled', 'cancelRunning stopped the running agent');

    const before = repo.store.all().length;
    const refused = await vscode.commands.executeCommand('agentLanes.newDraft', {
      task: 'Add a greeting function and a test',
      agentId: 'scripted',
    });
    assert.equal(refused, undefined, 'the draft was refused');
    assert.equal(repo.store.all().length, before);
    // From the palette, with nothing given: refused before the task is asked for (no question is left open).
    const unasked = await Promise.race([
      vscode.commands.executeCommand('agentLanes.newDraft'),
      new Promise((resolve) => setTimeout(() => resolve('a question was asked'), 10_000)),
    ]);
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    assert.equal(unasked, undefined, 'New Draft refused before asking anything');
    const events = await lastEvents(repo, 30);
    const refusal = events
      .filter((e) => e.action === 'policy.decision' && (e.details as { action?: string }).action === 'createDraft')
      .at(-1);
    assert.equal((refusal?.details as { effect?: string }).effect, 'block');
    assert.match(
      String((refusal?.details as { explanation?: string }).explanation),
      /kill switch has stopped new drafts: Frozen during the incident review/,
    );
    const change = events.filter((e) => e.action === 'killSwitch.change').at(-1);
    assert.deepEqual((change?.details as { engaged?: string[] }).engaged, ['disableDrafts', 'cancelRunning']);

    endpoint.body = samplePolicy;
    await vscode.commands.executeCommand('agentLanes.refreshPolicy');
    assert.equal(api.view.message, undefined, 'released: the message is gone');
  });

  it('with the endpoint down the cached policy stays in force; a new endpoint with nothing cached fails closed', async () => {
    const api = await lanesApi();
    const port = endpoint.port;
    await endpoint.stop();
    await vscode.commands.executeCommand('agentLanes.refreshPolicy');
    assert.equal(api.statusBar.text, `$(shield) Lanes: ${POLICY_REF} (cached)`);
    const cached = await repo.lanes.context.policy.decide('gate.draftToSandbox', {
      files: [{ path: 'infra/x.tf', additions: 1, deletions: 0 }],
    });
    assert.match(cached.explanation, /Terraform pipeline/, 'the cached org policy still decides');

    await setEndpoint(`http://127.0.0.1:${port}/never-fetched.yaml`);
    await waitFor(() => api.statusBar.text === '$(shield) Lanes: policy unavailable', `fail closed (status bar: ${api.statusBar.text})`);
    assert.match(api.view.message ?? '', /^Policy unavailable: only drafts are allowed \(no sandbox runs, pushes or pull requests\)\. /);
    const gate = await repo.lanes.context.policy.decide('gate.draftToSandbox', {
      files: [{ path: 'src/a.js', additions: 1, deletions: 0 }],
    });
    assert.equal(gate.effect, 'block');
    assert.equal(gate.matchedRules[0]?.rule, 'failClosed');
    const text = await textOf(await vscode.commands.executeCommand<vscode.Uri>('agentLanes.showEffectivePolicy', { level: 'org' }));
    assert.match(text, /State: FAIL CLOSED\./);
    const draft = await vscode.commands.executeCommand<Change>('agentLanes.newDraft', { task: 'Change nothing', agentId: 'scripted' });
    assert.ok(draft, 'drafts are still allowed when failing closed');
    await settled(draft.id);

    await setEndpoint(undefined);
    await waitFor(() => api.statusBar.text === '$(shield) Lanes: local policy', 'the local policy');
    assert.equal(api.view.message, undefined);
  });

  it('Show Effective Policy says when the repository policy at HEAD is invalid, instead of showing a policy', async () => {
    writeFileSync(
      join(repo.root, '.lanes', 'policy.yaml'),
      'apiVersion: agentlanes.dev/v1\npathRule:\n  - { glob: "db/**", effect: block, reason: typo }\n',
    );
    git(repo.root, 'commit', '-q', '-am', 'A misspelt repository policy');
    const text = await textOf(
      await vscode.commands.executeCommand<vscode.Uri>('agentLanes.showEffectivePolicy', { repository: repo.root }),
    );
    assert.match(text, /# The effective policy cannot be computed: the repository policy is invalid: .*pathRule/);
    assert.match(text, /# Until this is fixed, every action on changes of this repository is blocked\./);
    assert.doesNotMatch(text, /^pathRules:/m);
  });
});
