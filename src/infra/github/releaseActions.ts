// The GitHub side of production actions (docs/actions.md): a workflow run of the merged commit, a deployment of it,
// their state, and team membership for authorizers named as "@org/team". Every error is a GitHubError whose message
// says what to do; nothing here decides whether an action may run (src/core/release/authorize.ts does).
import { type GitHubClient, GitHubError, type GitHubRepository, toGitHubError } from './client';

type Repository = Pick<GitHubRepository, 'owner' | 'repo'>;

const context = (client: GitHubClient, repository: Repository, action: string) => ({ action, repository, apiBaseUrl: client.apiBaseUrl });

/** Whose token this is: the person GitHub will say started the action, so the one who authorizes it. */
export async function authenticatedLogin(client: GitHubClient): Promise<string> {
  try {
    return (await client.octokit.rest.users.getAuthenticated()).data.login;
  } catch (error) {
    throw toGitHubError(error, { action: 'read who is signed in', apiBaseUrl: client.apiBaseUrl }, client.scrub);
  }
}

/** Whether `login` is an active member of a team named "@org/team-slug". */
export async function isTeamMember(client: GitHubClient, team: string, login: string): Promise<boolean> {
  const match = /^@([^/\s]+)\/([^/\s]+)$/.exec(team);
  if (!match) return false;
  try {
    const membership = await client.octokit.rest.teams.getMembershipForUserInOrg({ org: match[1]!, team_slug: match[2]!, username: login });
    return membership.data.state === 'active';
  } catch (error) {
    if ((error as { status?: number }).status === 404) return false;
    throw toGitHubError(error, { action: `read ${login}'s membership of ${team}`, apiBaseUrl: client.apiBaseUrl }, client.scrub);
  }
}

/** The commit a branch points at on GitHub. */
async function branchHeadOnGitHub(client: GitHubClient, repository: Repository, branch: string): Promise<string> {
  try {
    return (await client.octokit.rest.repos.getBranch({ ...repository, branch })).data.commit.sha;
  } catch (error) {
    throw toGitHubError(error, context(client, repository, `read the branch ${branch}`), client.scrub);
  }
}

export interface StartedRun {
  runId: number;
  url: string;
}

/**
 * Runs `workflow` on `branch` with `inputs`, for the commit `sha`. A dispatch names a branch, not a commit, so the
 * branch must still point at `sha` (checked just before), and the run GitHub reports must be for it (checked after).
 */
export async function dispatchWorkflow(
  client: GitHubClient,
  repository: Repository,
  request: { workflow: string; branch: string; sha: string; inputs: Record<string, string> },
): Promise<StartedRun> {
  const head = await branchHeadOnGitHub(client, repository, request.branch);
  if (head !== request.sha)
    throw new GitHubError(
      'validation',
      `${request.branch} has moved on to ${head.slice(0, 12)} since ${request.sha.slice(0, 12)} was merged; a workflow run there would not be of the merged commit. Nothing was run; deploy the newer change instead.`,
    );
  let started;
  try {
    started = await client.octokit.rest.actions.createWorkflowDispatch({
      ...repository,
      workflow_id: request.workflow,
      ref: request.branch,
      inputs: request.inputs,
      return_run_details: true,
    });
  } catch (error) {
    const failure = toGitHubError(error, context(client, repository, `start the workflow ${request.workflow}`), client.scrub);
    if (failure.status === 404)
      throw new GitHubError(
        'notFound',
        `The workflow ${request.workflow} does not exist in ${repository.owner}/${repository.repo} or has no workflow_dispatch trigger. Fix "workflow" of the action in policy.`,
        failure.details,
      );
    throw failure;
  }
  const details = started.data as { workflow_run_id?: number; html_url?: string } | undefined;
  if (!details?.workflow_run_id)
    throw new GitHubError('unexpected', `GitHub started the workflow ${request.workflow} but did not name its run; find it under Actions.`);
  const run = await workflowRunState(client, repository, details.workflow_run_id);
  if (run.headSha !== request.sha)
    throw new GitHubError(
      'validation',
      `The workflow run ${run.url} is for ${run.headSha.slice(0, 12)}, not the merged commit ${request.sha.slice(0, 12)} (${request.branch} moved meanwhile). Cancel it on GitHub.`,
    );
  return { runId: details.workflow_run_id, url: details.html_url ?? run.url };
}

export interface RunState {
  status: string;
  conclusion: string | null;
  headSha: string;
  url: string;
}

export async function workflowRunState(client: GitHubClient, repository: Repository, runId: number): Promise<RunState> {
  try {
    const run = (await client.octokit.rest.actions.getWorkflowRun({ ...repository, run_id: runId })).data;
    return { status: run.status ?? 'queued', conclusion: run.conclusion ?? null, headSha: run.head_sha, url: run.html_url };
  } catch (error) {
    throw toGitHubError(error, context(client, repository, `read the workflow run ${runId}`), client.scrub);
  }
}

/** Comments on a pull request's conversation (escalation: it @-mentions who to notify). */
export async function commentOnPullRequest(client: GitHubClient, repository: Repository, number: number, body: string): Promise<string> {
  try {
    return (await client.octokit.rest.issues.createComment({ ...repository, issue_number: number, body })).data.html_url;
  } catch (error) {
    throw toGitHubError(error, context(client, repository, `comment on pull request #${number}`), client.scrub);
  }
}

/** Creates a deployment of `sha` to `environment`, which must exist. GitHub refuses it (409) when the commit's checks failed. */
export async function createDeployment(
  client: GitHubClient,
  repository: Repository,
  request: { sha: string; environment: string; description: string; payload: Record<string, string> },
): Promise<{ deploymentId: number; url: string }> {
  try {
    await client.octokit.rest.repos.getEnvironment({ ...repository, environment_name: request.environment });
  } catch (error) {
    const failure = toGitHubError(error, context(client, repository, `read the environment ${request.environment}`), client.scrub);
    if (failure.status === 404)
      throw new GitHubError(
        'notFound',
        `${repository.owner}/${repository.repo} has no environment "${request.environment}". Create it on GitHub or fix "environment" of the action in policy.`,
        failure.details,
      );
    throw failure;
  }
  try {
    const made = await client.octokit.rest.repos.createDeployment({
      ...repository,
      ref: request.sha,
      environment: request.environment,
      description: request.description,
      payload: request.payload,
      auto_merge: false,
    });
    if (made.status !== 201 || !('id' in made.data))
      throw new GitHubError('unexpected', `GitHub did not create the deployment: ${JSON.stringify(made.data).slice(0, 200)}`);
    return { deploymentId: made.data.id, url: made.data.url };
  } catch (error) {
    const failure = toGitHubError(
      error,
      context(client, repository, `deploy ${request.sha.slice(0, 12)} to ${request.environment}`),
      client.scrub,
    );
    if (failure.status === 409)
      throw new GitHubError(
        'validation',
        `GitHub refused to deploy ${request.sha.slice(0, 12)} to ${request.environment}: the commit's status checks failed (or it conflicts with the environment's branch). Nothing was deployed; see the checks on GitHub.`,
        failure.details,
      );
    throw failure;
  }
}

/** The newest state of a deployment ("queued", "in_progress", "success", "failure", "error"…), or "pending" before any. */
export async function deploymentState(client: GitHubClient, repository: Repository, deploymentId: number): Promise<string> {
  try {
    const statuses = (await client.octokit.rest.repos.listDeploymentStatuses({ ...repository, deployment_id: deploymentId, per_page: 1 }))
      .data;
    return statuses[0]?.state ?? 'pending';
  } catch (error) {
    throw toGitHubError(error, context(client, repository, `read the deployment ${deploymentId}`), client.scrub);
  }
}
