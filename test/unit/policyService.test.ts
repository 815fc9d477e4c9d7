import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consoleLogger } from './support/consoleLogger';
import {
  PolicyDeniedError,
  PolicyService,
  type KillSwitchChange,
  type PolicySettings,
  type PolicyState,
} from '../../src/infra/policy/policyService';
import { fileSystemIgnoresCase } from '../../src/infra/policy/checkoutCase';
import { readRepositoryPolicy } from '../../src/infra/policy/repositoryPolicy';
import { GOOD_POLICY, PolicyServer, signBody } from './support/policyServer';

const quiet = consoleLogger(true);
const file = (path: string) => ({ path, additions: 1, deletions: 0 });

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.invalid', '-c', 'commit.gpgsign=false', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1' },
  }).trim();
}

function waitFor<T>(
  subscribe: (listener: (value: T) => void) => { dispose(): void },
  predicate: (value: T) => boolean,
  timeoutMs = 5_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      subscription.dispose();
      reject(new Error(`nothing arrived within ${timeoutMs} ms`));
    }, timeoutMs);
    const subscription = subscribe((value) => {
      if (!predicate(value)) return;
      clearTimeout(timer);
      subscription.dispose();
      resolve(value);
    });
  });
}

describe('policy service', () => {
  let server: PolicyServer;
  let dir: string;
  let clock: Date;
  const services: PolicyService[] = [];

  const service = (settings: PolicySettings, refreshIntervalMs?: number): PolicyService => {
    const created = new PolicyService(settings, {
      cacheFile: join(dir, 'org-policy.json'),
      logger: quiet,
      now: () => clock,
      limits: { timeoutMs: 1_000 },
      ...(refreshIntervalMs ? { refreshIntervalMs } : {}),
    });
    services.push(created);
    return created;
  };

  beforeEach(async () => {
    server = await new PolicyServer().start();
    dir = mkdtempSync(join(tmpdir(), 'lanes-policy-service-'));
    clock = new Date('2026-11-21T12:00:00Z');
  });

  afterEach(async () => {
    for (const created of services.splice(0)) created.dispose();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('with no endpoint: the built-in local policy', async () => {
    const policy = service({ endpoint: '' });
    const state = await policy.start();
    assert.equal(state.kind, 'local');
    assert.match((state as { policyRef: string }).policyRef, /^agent-lanes-local@/);
    assert.equal(server.requests.length, 0);
    const decision = await policy.decide('gate.draftToSandbox', { agentId: 'codex', files: [file('.github/workflows/ci.yml')] });
    assert.equal(decision.effect, 'block');
    assert.match(decision.explanation, /CI workflows/);
    await assert.rejects(policy.assertAllowed('gate.draftToSandbox', { files: [file('.github/workflows/ci.yml')] }), (error: unknown) => {
      assert.ok(error instanceof PolicyDeniedError);
      assert.equal(error.decision.effect, 'block');
      assert.match(error.message, /^Blocked: Draft → Sandbox: \.github\/workflows\/ci\.yml matches/);
      return true;
    });
    const allowed = await policy.assertAllowed('createDraft', { agentId: 'codex' });
    assert.equal(allowed.effect, 'allow');
  });

  it('with an endpoint: the org policy, its reference and hash in the state', async () => {
    const policy = service({ endpoint: server.url() });
    assert.equal(policy.state.kind, 'failClosed', 'before the first fetch nothing but drafts');
    const states: PolicyState[] = [];
    policy.onDidChangeState((state) => states.push(state));
    const state = await policy.start();
    assert.equal(state.kind, 'org');
    if (state.kind !== 'org') return;
    assert.equal(state.policyRef, 'acme@3');
    assert.equal(state.source, 'network');
    assert.equal(state.policyHash, policy.effective.policyHash);
    assert.deepEqual(
      states.map((s) => s.kind),
      ['org'],
    );
    assert.equal((await policy.decide('gate.draftToSandbox', { files: [file('infra/a.tf')] })).effect, 'block');
    assert.equal(
      (await policy.decide('gate.draftToSandbox', { files: [file('.github/workflows/ci.yml')] })).effect,
      'allow',
      'the org policy replaces the built-in one',
    );
  });

  it('fails closed with nothing cached: drafts only, no sandbox, no push, no pull request', async () => {
    server.handler = (_request, response) => {
      response.statusCode = 500;
      response.end();
    };
    const policy = service({ endpoint: server.url() });
    const state = await policy.start();
    assert.equal(state.kind, 'failClosed');
    if (state.kind === 'failClosed') assert.match(state.reason, /HTTP 500/);
    assert.equal((await policy.decide('createDraft', { agentId: 'codex' })).effect, 'allow');
    assert.equal((await policy.decide('startAgent', { agentId: 'codex' })).effect, 'allow');
    for (const action of [
      'runTask',
      'gate.draftToSandbox',
      'gate.sandboxToReview',
      'gate.reviewToPullRequest',
      'push',
      'createPullRequest',
    ] as const) {
      const decision = await policy.decide(action, { files: [file('src/a.ts')], approvals: [{ by: 'alice' }] });
      assert.equal(decision.effect, 'block', action);
      assert.equal(decision.matchedRules[0]!.rule, 'failClosed');
      assert.match(decision.explanation, /the org policy is unavailable, so only drafts are allowed: .*HTTP 500/);
    }
  });

  it('no decision is made on an invalid org policy: the last good one holds, or none', async () => {
    const policy = service({ endpoint: server.url() });
    await policy.start();
    server.handler = (_request, response) =>
      response.end(GOOD_POLICY.replace('infra/**', 'infra/[').replace('version: "3"', 'version: "4"'));
    const state = await policy.refresh();
    assert.equal(state.kind, 'org');
    if (state.kind === 'org') {
      assert.equal(state.policyRef, 'acme@3');
      assert.equal(state.source, 'cache');
      assert.match(state.warning!, /invalid glob "infra\/\["/);
    }
    assert.equal((await policy.decide('gate.draftToSandbox', { files: [file('infra/a.tf')] })).effect, 'block');
  });

  it('the kill switch, turned on at the endpoint, stops side effects within one refresh interval and is reported', async () => {
    const policy = service({ endpoint: server.url() }, 150);
    await policy.start();
    assert.equal((await policy.decide('runTask', {})).effect, 'allow');
    const killed = GOOD_POLICY.replace(
      'pathRules:',
      'killSwitch: { disableSandbox: true, cancelRunning: true, message: "Incident 42: sandbox paused." }\npathRules:',
    );
    const change = waitFor<KillSwitchChange>(policy.onDidChangeKillSwitch, () => true);
    server.handler = (_request, response) => response.end(killed);
    const reported = await change; // no refresh() call: the interval fetched it
    assert.deepEqual(reported.engaged, ['disableSandbox', 'cancelRunning']);
    assert.equal(reported.current.message, 'Incident 42: sandbox paused.');
    assert.equal(reported.policyRef, 'acme@3');
    assert.equal(policy.killSwitch.disableSandbox, true);
    await assert.rejects(
      policy.assertAllowed('runTask', {}),
      /Blocked: run a sandbox task: the kill switch has stopped sandbox runs: Incident 42: sandbox paused\./,
    );
    assert.equal((await policy.decide('createDraft', {})).effect, 'allow');
    const released = waitFor<KillSwitchChange>(policy.onDidChangeKillSwitch, () => true);
    server.handler = (_request, response) => response.end(GOOD_POLICY);
    assert.deepEqual((await released).released, ['disableSandbox', 'cancelRunning']);
  });

  it('an org policy that expires while in use fails closed at once', async () => {
    const policy = service({ endpoint: server.url() });
    await policy.start();
    assert.equal((await policy.decide('push', { files: [file('a')], approvals: [{ by: 'x' }] })).effect, 'allow');
    clock = new Date('2027-01-01T00:00:01Z');
    const decision = await policy.decide('push', { files: [file('a')], approvals: [{ by: 'x' }] });
    assert.equal(decision.effect, 'block');
    assert.equal(policy.state.kind, 'failClosed');
    assert.match(decision.explanation, /expired at 2027-01-01T00:00:00Z/);
  });

  it('a kill switch once seen holds when its cached policy expires while the endpoint is down, until a valid policy lifts it', async () => {
    const killed = GOOD_POLICY.replace('pathRules:', 'killSwitch: { disableDrafts: true, message: "Incident 7: no agents." }\npathRules:');
    server.handler = (_request, response) => response.end(killed);
    const policy = service({ endpoint: server.url() });
    await policy.start();
    assert.equal((await policy.decide('createDraft', { agentId: 'codex' })).effect, 'block');
    server.handler = (_request, response) => {
      response.statusCode = 503;
      response.end();
    };
    clock = new Date('2027-01-01T00:00:01Z');
    let decision = await policy.decide('createDraft', { agentId: 'codex' });
    assert.equal(policy.state.kind, 'failClosed');
    assert.equal(decision.effect, 'block', 'the expired policy took its kill switch with it');
    assert.match(decision.explanation, /the kill switch has stopped .*Incident 7: no agents\./);
    await policy.refresh();
    assert.equal((await policy.decide('createDraft', { agentId: 'codex' })).effect, 'block', 'and a refresh that fails keeps it');

    // A restart while the endpoint is still down: the expired cached copy still says the switch was on.
    const restarted = service({ endpoint: server.url() });
    const engaged = waitFor<KillSwitchChange>(restarted.onDidChangeKillSwitch, () => true);
    assert.equal((await restarted.start()).kind, 'failClosed');
    assert.deepEqual((await engaged).engaged, ['disableDrafts']);
    assert.equal(restarted.killSwitch.disableDrafts, true);
    decision = await restarted.decide('startAgent', { agentId: 'codex' });
    assert.equal(decision.effect, 'block');
    assert.match(decision.explanation, /Incident 7: no agents\./);

    // A valid policy without the switch lifts it.
    server.handler = (_request, response) => response.end(GOOD_POLICY.replace('2027-01-01T00:00:00Z', '2028-01-01T00:00:00Z'));
    const released = waitFor<KillSwitchChange>(restarted.onDidChangeKillSwitch, () => true);
    assert.equal((await restarted.refresh()).kind, 'org');
    assert.deepEqual((await released).released, ['disableDrafts']);
    assert.equal((await restarted.decide('createDraft', { agentId: 'codex' })).effect, 'allow');
  });

  it("probes whether the checkout's file system ignores case without writing to it", async () => {
    const folder = join(dir, 'Checkout');
    mkdirSync(folder);
    const other = (() => {
      try {
        return statSync(join(dir, 'cHECKOUT'));
      } catch {
        return undefined;
      }
    })();
    const sameFolder = other?.ino === statSync(folder).ino;
    assert.equal(await fileSystemIgnoresCase(folder), sameFolder);
    // A look-alike folder in the other case is another folder, not the same one.
    mkdirSync(join(dir, 'other'));
    if (!sameFolder) {
      mkdirSync(join(dir, 'OTHER'));
      assert.equal(await fileSystemIgnoresCase(join(dir, 'other')), false);
    }
  });

  it('refuses an unsigned policy when a public key is set, and accepts a signed one', async () => {
    const keys = generateKeyPairSync('ed25519');
    const publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    server.handler = (request, response) => {
      response.statusCode = request.url?.endsWith('.sig') ? 404 : 200;
      response.end(request.url?.endsWith('.sig') ? '' : GOOD_POLICY);
    };
    const policy = service({ endpoint: server.url(), publicKey });
    const unsigned = await policy.start();
    assert.equal(unsigned.kind, 'failClosed');
    if (unsigned.kind === 'failClosed') assert.match(unsigned.reason, /is not signed/);
    server.handler = (_request, response) => {
      response.setHeader('X-Agent-Lanes-Signature', signBody(GOOD_POLICY, keys.privateKey));
      response.end(GOOD_POLICY);
    };
    assert.equal((await policy.refresh()).kind, 'org');
  });

  it('user settings can restrict but not widen, and an invalid setting blocks every action', async () => {
    const policy = service({
      endpoint: '',
      user: { blastRadius: { maxFiles: 1 }, pathRules: [{ glob: '.github/workflows/**', effect: 'allow', reason: 'mine' }] },
    });
    await policy.start();
    assert.equal(policy.effective.policy.blastRadius.maxFiles, 1);
    assert.deepEqual(
      policy.effective.widenings.map((w) => w.field),
      ['pathRules[".github/workflows/**"]'],
    );
    assert.equal((await policy.decide('gate.draftToSandbox', { files: [file('a'), file('b')] })).effect, 'block');
    assert.equal((await policy.decide('gate.draftToSandbox', { files: [file('.github/workflows/x.yml')] })).effect, 'block');

    const state = await policy.updateSettings({ endpoint: '', user: { blastRadius: { maxFiles: 'one' } } });
    assert.equal(state.kind, 'local');
    assert.match(
      (state as { warning?: string }).warning!,
      /agentLanes\.policy\.user is invalid: agentLanes\.policy\.user: blastRadius\.maxFiles: expected a number, got "one"/,
    );
    assert.deepEqual(policy.userPolicyErrors, ['agentLanes.policy.user: blastRadius.maxFiles: expected a number, got "one"']);
    const decision = await policy.decide('createDraft', {});
    assert.equal(decision.effect, 'block');
    assert.match(decision.explanation, /fix or remove it/);
  });

  it('switching from no endpoint to an endpoint fetches it', async () => {
    const policy = service({ endpoint: '' });
    await policy.start();
    const state = await policy.updateSettings({ endpoint: server.url() });
    assert.equal(state.kind, 'org');
    assert.equal((await policy.updateSettings({ endpoint: '' })).kind, 'local');
  });

  describe('the repository policy, from the base commit', () => {
    let repo: string;
    let baseSha: string;

    beforeEach(() => {
      repo = join(dir, 'repo');
      mkdirSync(join(repo, '.lanes'), { recursive: true });
      git(repo, 'init', '-q', '-b', 'main');
      writeFileSync(join(repo, 'README.md'), 'hello\n');
      writeFileSync(
        join(repo, '.lanes', 'policy.yaml'),
        'apiVersion: agentlanes.dev/v1\npathRules:\n  - { glob: "db/**", effect: block, reason: DBA only. }\nlanes: { sandbox: { limits: { cpus: 1 } } }\n',
      );
      git(repo, 'add', '-A');
      git(repo, 'commit', '-q', '-m', 'base');
      baseSha = git(repo, 'rev-parse', 'HEAD');
    });

    it('reads .lanes/policy.yaml from the commit, not the working tree', async () => {
      writeFileSync(join(repo, '.lanes', 'policy.yaml'), 'apiVersion: agentlanes.dev/v1\n');
      const result = await readRepositoryPolicy(repo, baseSha);
      assert.equal(result.kind, 'ok');
      if (result.kind === 'ok') {
        assert.equal(result.document.pathRules?.[0]?.glob, 'db/**');
        assert.equal(result.document.metadata.id, 'repository');
        assert.equal(result.document.metadata.version, baseSha.slice(0, 12));
        assert.equal(result.source, `.lanes/policy.yaml at ${baseSha.slice(0, 12)}`);
      }
    });

    it('an agent editing the policy in its worktree changes nothing', async () => {
      const worktree = join(dir, 'worktree');
      git(repo, 'worktree', 'add', '-q', '-b', 'lanes/abcd1234', worktree, baseSha);
      writeFileSync(join(worktree, '.lanes', 'policy.yaml'), 'apiVersion: agentlanes.dev/v1\npathRules: []\n');
      git(worktree, 'commit', '-q', '-am', 'agent loosens the policy');
      const policy = service({ endpoint: '' });
      await policy.start();
      const decision = await policy.decide('gate.draftToSandbox', { files: [file('db/schema.sql')] }, { repoRoot: worktree, baseSha });
      assert.equal(decision.effect, 'block');
      assert.equal(decision.matchedRules[0]!.policy, `repository@${baseSha.slice(0, 12)}`);
      assert.match(decision.explanation, /DBA only/);
      const effective = await policy.effectiveFor({ repoRoot: repo, baseSha });
      assert.ok(effective.ok);
      if (effective.ok) {
        assert.equal(effective.effective.policy.lanes.sandbox.limits.cpus, 1);
        assert.equal(effective.effective.origins['lanes.sandbox.limits.cpus'], 'repository');
      }
    });

    it('no policy file: no repository level', async () => {
      git(repo, 'rm', '-q', '.lanes/policy.yaml');
      git(repo, 'commit', '-q', '-m', 'drop policy');
      const sha = git(repo, 'rev-parse', 'HEAD');
      assert.deepEqual(await readRepositoryPolicy(repo, sha), { kind: 'none', baseSha: sha });
    });

    it('an invalid repository policy blocks with its error; a symlink or a bad commit is refused', async () => {
      writeFileSync(join(repo, '.lanes', 'policy.yaml'), 'apiVersion: agentlanes.dev/v1\nblastRadius: { maxFiles: lots }\n');
      git(repo, 'commit', '-q', '-am', 'bad policy');
      const badSha = git(repo, 'rev-parse', 'HEAD');
      const policy = service({ endpoint: '' });
      await policy.start();
      const decision = await policy.decide('gate.draftToSandbox', { files: [file('a')] }, { repoRoot: repo, baseSha: badSha });
      assert.equal(decision.effect, 'block');
      assert.equal(decision.matchedRules[0]!.rule, 'repositoryPolicy');
      assert.match(
        decision.explanation,
        /the repository policy is invalid: \.lanes\/policy\.yaml at [0-9a-f]{12}:\d+:\d+: blastRadius\.maxFiles: expected a number, got "lots"; fix it in a commit on the base branch/,
      );

      rmSync(join(repo, '.lanes', 'policy.yaml'));
      writeFileSync(join(repo, 'elsewhere.yaml'), 'apiVersion: agentlanes.dev/v1\n');
      symlinkSync('../elsewhere.yaml', join(repo, '.lanes', 'policy.yaml'));
      git(repo, 'add', '-A');
      git(repo, 'commit', '-q', '-m', 'symlinked policy');
      const linked = await readRepositoryPolicy(repo, git(repo, 'rev-parse', 'HEAD'));
      assert.equal(linked.kind, 'invalid');
      if (linked.kind === 'invalid') assert.match(linked.errors[0]!, /is a symbolic link in the base commit/);

      const missing = await readRepositoryPolicy(repo, 'f'.repeat(40));
      assert.equal(missing.kind, 'invalid');
      if (missing.kind === 'invalid') assert.match(missing.errors[0]!, /cannot read the base commit ffffffffffff/);
      const injected = await readRepositoryPolicy(repo, '--output=/tmp/x');
      assert.equal(injected.kind, 'invalid');
      if (injected.kind === 'invalid') assert.match(injected.errors[0]!, /is not a commit id/);
    });
  });
});
