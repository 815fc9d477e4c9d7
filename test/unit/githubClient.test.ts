import assert from 'node:assert/strict';
import {
  createGitHubClient,
  DEFAULT_API_BASE_URL,
  GitHubError,
  normalizeApiBaseUrl,
  parseRemote,
  tokenSafeLogger,
  createScrubber,
  toGitHubError,
  type GitHubClient,
  type RateLimitNotice,
} from '../../src/infra/github/client';
import { capturingLogger } from '../fixtures/github-standin/capturingLogger';
import { startGitHubStandIn, type GitHubStandIn } from '../fixtures/github-standin/server';

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a failure');
}

describe('GitHub API base URL setting', () => {
  it('defaults to github.com and trims a trailing slash', () => {
    assert.equal(normalizeApiBaseUrl(undefined), DEFAULT_API_BASE_URL);
    assert.equal(normalizeApiBaseUrl('  '), DEFAULT_API_BASE_URL);
    assert.equal(normalizeApiBaseUrl('https://ghe.example.com/api/v3/'), 'https://ghe.example.com/api/v3');
    assert.equal(normalizeApiBaseUrl('http://127.0.0.1:8080/api/v3'), 'http://127.0.0.1:8080/api/v3');
  });

  it('refuses what would leak the token or is not a URL, saying what to use', () => {
    assert.throws(() => normalizeApiBaseUrl('ghe.example.com'), /is not a URL.*https:\/\/HOST\/api\/v3/);
    assert.throws(() => normalizeApiBaseUrl('http://ghe.example.com/api/v3'), /must use https/);
    assert.throws(() => normalizeApiBaseUrl('https://user:pw@ghe.example.com/api/v3'), /must not contain a user name or password/);
    assert.throws(() => normalizeApiBaseUrl('https://ghe.example.com/api/v3?x=1'), /query or fragment/);
  });
});

describe('parseRemote', () => {
  it('reads every GitHub remote form', () => {
    const expected = { owner: 'octo-org', repo: 'hello.lanes', host: 'github.com' };
    assert.deepEqual(parseRemote('https://github.com/octo-org/hello.lanes.git'), expected);
    assert.deepEqual(parseRemote('https://github.com/octo-org/hello.lanes/'), expected);
    assert.deepEqual(parseRemote('git@github.com:octo-org/hello.lanes.git'), expected);
    assert.deepEqual(parseRemote('ssh://git@github.com/octo-org/hello.lanes.git'), expected);
    assert.deepEqual(parseRemote('ssh://git@ssh.github.com:443/octo-org/hello.lanes.git'), { ...expected, host: 'ssh.github.com' });
    assert.deepEqual(parseRemote('https://x-access-token:abc@github.com/octo-org/hello.lanes'), expected);
  });

  it('matches Enterprise remotes to the host of the API base URL', () => {
    assert.deepEqual(parseRemote('git@ghe.example.com:team/app.git', 'https://ghe.example.com/api/v3'), {
      owner: 'team',
      repo: 'app',
      host: 'ghe.example.com',
    });
    assert.deepEqual(parseRemote('https://acme.ghe.com/team/app', 'https://api.acme.ghe.com'), {
      owner: 'team',
      repo: 'app',
      host: 'acme.ghe.com',
    });
  });

  it('says a remote that is not GitHub cannot get a pull request, but the branch can still be pushed', () => {
    const error = (() => {
      try {
        parseRemote('https://gitlab.com/group/project.git', DEFAULT_API_BASE_URL, { remoteName: 'origin', branch: 'lanes/abcd1234' });
      } catch (caught) {
        return caught as GitHubError;
      }
      return undefined;
    })();
    assert.ok(error instanceof GitHubError);
    assert.equal(error.kind, 'notGitHub');
    assert.match(error.message, /is on gitlab\.com, not on github\.com/);
    assert.match(error.message, /The branch can still be pushed: git push origin lanes\/abcd1234/);
    assert.match(error.message, /agentLanes\.github\.apiBaseUrl to https:\/\/gitlab\.com\/api\/v3/);
  });

  it('refuses local paths, other schemes and paths that are not OWNER/REPO, without showing credentials', () => {
    assert.throws(() => parseRemote('/srv/git/project.git'), /is a local path.*can still be pushed/);
    assert.throws(() => parseRemote('file:///srv/git/project.git'), /uses file/);
    assert.throws(() => parseRemote('https://github.com/octo-org'), /OWNER\/REPO/);
    assert.throws(() => parseRemote('https://github.com/octo-org/repo/tree/main'), /OWNER\/REPO/);
    assert.throws(
      () => parseRemote('https://github.com/octo-org/hello', 'https://ghe.example.com/api/v3'),
      /Clear agentLanes\.github\.apiBaseUrl to use github\.com/,
    );
    try {
      parseRemote('https://user:s3cret-pass@bitbucket.org/a/b.git');
      assert.fail('expected notGitHub');
    } catch (error) {
      assert.doesNotMatch((error as Error).message, /s3cret-pass/);
    }
  });
});

describe('token-safe logging', () => {
  it('removes the token and secret-shaped text from every argument and error', () => {
    const sink = capturingLogger();
    const token = 'plain-token-without-a-known-shape-42';
    const logger = tokenSafeLogger(sink, createScrubber([token]));
    logger.debug(`sending ${token}`, { headers: { authorization: `token ${token}` } }, new Error(`bad ${token}`));
    logger.info('other ghp_0123456789abcdefghij0123456789abcdefgh');
    assert.equal(sink.lines.length, 2);
    for (const line of sink.lines) assert.ok(!line.includes(token) && !line.includes('ghp_0123'), line);
    assert.match(sink.lines[0] ?? '', /\[REDACTED:token\]/);
  });
});

describe('GitHub client against the stand-in', function () {
  this.timeout(30_000);
  const token = 'standin-token-do-not-print-93f1c2';
  let standIn: GitHubStandIn;
  let logger: ReturnType<typeof capturingLogger>;
  let notices: RateLimitNotice[];
  let client: GitHubClient;
  const errors: unknown[] = [];

  beforeEach(async () => {
    standIn = await startGitHubStandIn({ token, branches: { main: 'a'.repeat(40) } });
    logger = capturingLogger();
    notices = [];
    client = createGitHubClient({
      token,
      apiBaseUrl: standIn.url,
      logger,
      onRateLimit: (notice) => notices.push(notice),
      retries: 1,
      retryBaseMs: 20,
    });
  });
  afterEach(async () => {
    await standIn.close();
    assert.deepEqual(standIn.state.violations, []);
    for (const line of logger.lines) assert.ok(!line.includes(token), `a log line holds the token: ${line}`);
  });
  after(() => {
    for (const error of errors) {
      const text = `${String(error)} ${(error as Error).stack ?? ''} ${JSON.stringify(error)}`;
      assert.ok(!text.includes(token), `an error holds the token: ${text}`);
    }
  });

  const getRepo = () => client.octokit.rest.repos.get({ owner: standIn.owner, repo: standIn.repo });
  const mapped = async (promise: Promise<unknown>, context = {}) => {
    const error = toGitHubError(
      await failureOf(promise),
      {
        action: 'read the repository',
        repository: { owner: standIn.owner, repo: standIn.repo },
        apiBaseUrl: client.apiBaseUrl,
        ...context,
      },
      client.scrub,
    );
    errors.push(error);
    return error;
  };

  it('talks to the stand-in as a GitHub Enterprise host and remembers the rate-limit headers', async () => {
    const { data } = await getRepo();
    assert.equal(data.full_name, `${standIn.owner}/${standIn.repo}`);
    assert.equal(client.rateLimit()?.limit, 5000);
    assert.equal(client.rateLimit()?.remaining, 4999);
  });

  it('401: asks to sign in again', async () => {
    const bad = createGitHubClient({ token: 'not-the-right-one', apiBaseUrl: standIn.url, logger });
    const error = toGitHubError(await failureOf(bad.octokit.rest.repos.get({ owner: standIn.owner, repo: standIn.repo })), {
      action: 'read the repository',
    });
    errors.push(error);
    assert.equal(error.kind, 'unauthorized');
    assert.match(error.message, /401 Bad credentials.*Sign in to GitHub again/);
  });

  it('403: says the account lacks permission and what to ask for, without echoing the token', async () => {
    standIn.setFault({ operation: 'repos/get', kind: 'forbidden', message: `Resource not accessible by token ${token}` });
    const error = await mapped(getRepo());
    assert.equal(error.kind, 'forbidden');
    assert.match(error.message, /refused to let the signed-in account read the repository in octo-org\/hello-lanes \(403/);
    assert.match(error.message, /Ask for write access/);
    assert.ok(!error.message.includes(token));
  });

  it('404: names the repository and the base branch', async () => {
    standIn.setFault({ operation: 'repos/get', kind: 'notFound' });
    const error = await mapped(getRepo(), { base: 'release' });
    assert.equal(error.kind, 'notFound');
    assert.match(error.message, /the repository, or the base branch "release", does not exist or the signed-in account cannot see it/);
  });

  it('422: passes GitHub’s validation message on', async () => {
    const error = await mapped(
      client.octokit.rest.pulls.create({ owner: standIn.owner, repo: standIn.repo, title: 'T', head: 'missing-branch', base: 'main' }),
      { action: 'create the pull request' },
    );
    assert.equal(error.kind, 'validation');
    assert.match(
      error.message,
      /GitHub refused to create the pull request in octo-org\/hello-lanes \(422\): Validation Failed: head invalid \(is the branch pushed\?\)/,
    );
  });

  it('network failure: retried, then a message naming the host and what to check', async () => {
    standIn.setFault({ operation: 'repos/get', kind: 'network', times: 5 });
    const error = await mapped(getRepo());
    assert.equal(error.kind, 'network');
    assert.match(error.message, /Could not reach GitHub at 127\.0\.0\.1:\d+ to read the repository/);
    assert.match(error.message, /Check the network connection/);
    assert.equal(standIn.state.requests.filter((request) => request.status === 'network').length, 2, 'one try and one retry');
  });

  it('secondary rate limit: waits as retry-after asks, reports it, then succeeds', async () => {
    standIn.setFault({ operation: 'repos/get', kind: 'secondaryRateLimit', retryAfterSeconds: 1 });
    const { data } = await getRepo();
    assert.equal(data.name, standIn.repo);
    assert.equal(notices.length, 1);
    assert.deepEqual(
      { ...notices[0], url: undefined },
      { kind: 'secondary', waitSeconds: 1, method: 'GET', url: undefined, attempt: 1, willRetry: true },
    );
    assert.equal(standIn.state.requests.length, 2);
    assert.ok(logger.lines.some((line) => /waiting 1 s before retrying GET/.test(line)));
  });

  it('secondary rate limit that does not lift: a clear message after the allowed waits', async () => {
    const impatient = createGitHubClient({
      token,
      apiBaseUrl: standIn.url,
      logger,
      onRateLimit: (notice) => notices.push(notice),
      maxRateLimitRetries: 0,
    });
    standIn.setFault({ operation: 'repos/get', kind: 'secondaryRateLimit', retryAfterSeconds: 30 });
    const error = await mapped(impatient.octokit.rest.repos.get({ owner: standIn.owner, repo: standIn.repo }));
    assert.equal(error.kind, 'rateLimited');
    assert.equal(error.details.retryAfterSeconds, 30);
    assert.match(error.message, /secondary rate limit.*Wait 30 s or more/);
    assert.deepEqual(
      notices.map((notice) => notice.willRetry),
      [false],
    );
  });

  it('hourly limit used up for longer than it is worth waiting: says when it resets', async () => {
    standIn.state.rateLimit.remaining = 0;
    standIn.state.rateLimit.reset = Math.floor(Date.now() / 1000) + 1800;
    const error = await mapped(getRepo());
    assert.equal(error.kind, 'rateLimited');
    assert.match(error.message, /rate limit for this account is used up.*It resets at \d\d:\d\d UTC \(in 30 min\)/);
    assert.equal(notices[0]?.kind, 'primary');
    assert.equal(notices[0]?.willRetry, false);
  });

  it('refuses an empty token with a sign-in message', () => {
    assert.throws(
      () => createGitHubClient({ token: '', logger }),
      (error: unknown) => error instanceof GitHubError && error.kind === 'unauthorized' && /Sign in to GitHub/.test(error.message),
    );
  });
});
