import assert from 'node:assert/strict';
import { type GitHubClient, GitHubError, createGitHubClient } from '../../src/infra/github/client';
import { readCommitChecks } from '../../src/infra/github/pullRequests';
import { createDeployment, deploymentState, dispatchWorkflow, isTeamMember, workflowRunState } from '../../src/infra/github/releaseActions';
import { capturingLogger } from '../fixtures/github-standin/capturingLogger';
import { type GitHubStandIn, startGitHubStandIn } from '../fixtures/github-standin/server';

// The GitHub calls of production actions, against the stand-in that checks every request and response against
// GitHub's published OpenAPI description (state.violations stays empty).

const MERGED = 'a'.repeat(40);
const LATER = 'b'.repeat(40);

describe('Release lane on GitHub: workflow runs, deployments and team members (OpenAPI-checked stand-in)', function () {
  this.timeout(30_000);
  const token = 'standin-token-release-4c1d';
  const repository = { owner: 'octo-org', repo: 'hello-lanes' };
  let standIn: GitHubStandIn;
  let client: GitHubClient;
  let branches: Record<string, string>;

  beforeEach(async () => {
    branches = { main: MERGED };
    standIn = await startGitHubStandIn({
      token,
      branches,
      workflows: { 'deploy.yml': ['environment', 'replicas'] },
      environments: ['staging', 'production'],
      teams: { release: ['ops'] },
    });
    client = createGitHubClient({ token, apiBaseUrl: standIn.url, logger: capturingLogger(), retries: 0 });
  });
  afterEach(async () => {
    await standIn.close();
    assert.deepEqual(standIn.state.violations, []);
  });

  it('runs a workflow on the branch of the merged commit and follows the run to its conclusion', async () => {
    const started = await dispatchWorkflow(client, repository, {
      workflow: 'deploy.yml',
      branch: 'main',
      sha: MERGED,
      inputs: { environment: 'staging', replicas: '2' },
    });
    assert.match(started.url, /\/actions\/runs\/\d+$/);
    const run = standIn.state.workflowRuns[0]!;
    assert.deepEqual(run.inputs, { environment: 'staging', replicas: '2' });
    assert.equal((await workflowRunState(client, repository, started.runId)).status, 'queued');
    standIn.setWorkflowRun(started.runId, 'completed', 'failure');
    const done = await workflowRunState(client, repository, started.runId);
    assert.deepEqual(
      { status: done.status, conclusion: done.conclusion, headSha: done.headSha },
      { status: 'completed', conclusion: 'failure', headSha: MERGED },
    );
  });

  it('refuses to run a workflow once the branch moved past the merged commit, and names a workflow that does not exist', async () => {
    branches.main = LATER;
    await assert.rejects(
      dispatchWorkflow(client, repository, { workflow: 'deploy.yml', branch: 'main', sha: MERGED, inputs: {} }),
      (error: Error) => error instanceof GitHubError && /main has moved on to bbbbbbbbbbbb .* Nothing was run/.test(error.message),
    );
    assert.equal(standIn.state.workflowRuns.length, 0, 'nothing was dispatched');
    branches.main = MERGED;
    await assert.rejects(
      dispatchWorkflow(client, repository, { workflow: 'missing.yml', branch: 'main', sha: MERGED, inputs: {} }),
      /The workflow missing\.yml does not exist in octo-org\/hello-lanes or has no workflow_dispatch trigger/,
    );
    await assert.rejects(
      dispatchWorkflow(client, repository, { workflow: 'deploy.yml', branch: 'main', sha: MERGED, inputs: { debug: 'true' } }),
      /Unexpected inputs provided/,
    );
  });

  it('catches the race: the branch moves between the head check and the dispatch, and the run is named as not of the merged commit', async () => {
    // The branch points at the merged commit while its head is checked (GET branch reads it twice), then moves on.
    let reads = 0;
    Object.defineProperty(branches, 'main', { get: () => (reads++ < 2 ? MERGED : LATER), configurable: true, enumerable: true });
    await assert.rejects(
      dispatchWorkflow(client, repository, { workflow: 'deploy.yml', branch: 'main', sha: MERGED, inputs: {} }),
      (error: Error) =>
        error instanceof GitHubError &&
        /The workflow run .*\/actions\/runs\/\d+ is for bbbbbbbbbbbb, not the merged commit aaaaaaaaaaaa \(main moved meanwhile\)\. Cancel it on GitHub\./.test(
          error.message,
        ),
    );
    assert.equal(standIn.state.workflowRuns.length, 1, 'GitHub started one run, on the newer commit');
    assert.equal(standIn.state.workflowRuns[0]!.headSha, LATER);
  });

  it('deploys the merged commit to an environment and reads its state; refuses a missing environment and red checks', async () => {
    standIn.setCheckRun(MERGED, { name: 'ci/test', status: 'completed', conclusion: 'success' });
    assert.equal((await readCommitChecks(client, repository, MERGED)).state, 'passing');
    const made = await createDeployment(client, repository, {
      sha: MERGED,
      environment: 'production',
      description: 'Agent Lanes: deploy-production for change c0ffee01',
      payload: { change: 'c0ffee01' },
    });
    assert.equal(await deploymentState(client, repository, made.deploymentId), 'pending');
    await client.octokit.rest.repos.createDeploymentStatus({ ...repository, deployment_id: made.deploymentId, state: 'success' });
    assert.equal(await deploymentState(client, repository, made.deploymentId), 'success');
    assert.equal(standIn.state.deployments[0]!.sha, MERGED);

    await assert.rejects(
      createDeployment(client, repository, { sha: MERGED, environment: 'moon', description: 'x', payload: {} }),
      /has no environment "moon"/,
    );
    standIn.setCheckRun(LATER, { name: 'ci/test', status: 'completed', conclusion: 'failure' });
    await assert.rejects(
      createDeployment(client, repository, { sha: LATER, environment: 'production', description: 'x', payload: {} }),
      (error: Error) =>
        error instanceof GitHubError && error.status === 409 && /status checks failed .* Nothing was deployed/.test(error.message),
    );
    assert.equal(standIn.state.deployments.length, 1);
  });

  it('knows team members for authorizers named "@org/team"', async () => {
    assert.equal(await isTeamMember(client, '@octo-org/release', 'ops'), true);
    assert.equal(await isTeamMember(client, '@octo-org/release', 'mallory'), false);
    assert.equal(await isTeamMember(client, 'not-a-team', 'ops'), false);
  });
});
