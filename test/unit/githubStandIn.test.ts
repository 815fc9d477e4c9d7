import assert from 'node:assert/strict';
import { GitHubDescription } from '../fixtures/github-standin/openapi';
import { SchemaValidator, type SchemaObject } from '../fixtures/github-standin/schemaValidator';
import { startGitHubStandIn, type GitHubStandIn } from '../fixtures/github-standin/server';
import { createLaneRepo, type LaneRepo } from '../fixtures/github-standin/laneRepo';
import { parseReadyForReview } from '../fixtures/github-standin/graphql';

const messages = (violations: { path: string; message: string }[]) => violations.map((v) => `${v.path} ${v.message}`);

describe('OpenAPI schema validator (the stand-in’s subset)', () => {
  const document = {
    components: {
      schemas: {
        user: { type: 'object', properties: { login: { type: 'string' }, id: { type: 'integer' } }, required: ['login', 'id'] },
        named: { type: 'object', properties: { name: { type: 'string' } } },
        aged: { type: 'object', properties: { age: { type: 'integer', minimum: 0 } } },
      },
    },
  };
  const validator = new SchemaValidator(document);
  const ref = (name: string): SchemaObject => ({ $ref: `#/components/schemas/${name}` });

  it('accepts a value that follows the schema', () => {
    assert.deepEqual(validator.validate(ref('user'), { login: 'octocat', id: 1 }), []);
  });

  it('rejects a wrong field type, through $ref', () => {
    assert.deepEqual(messages(validator.validate(ref('user'), { login: 'octocat', id: '1' })), ['/id expected integer, got string "1"']);
  });

  it('rejects a missing required field', () => {
    assert.deepEqual(messages(validator.validate(ref('user'), { login: 'octocat' })), [' missing required property "id"']);
  });

  it('rejects an undeclared property only in strict mode', () => {
    assert.deepEqual(validator.validate(ref('user'), { login: 'a', id: 1, extra: true }), []);
    assert.deepEqual(messages(validator.validate(ref('user'), { login: 'a', id: 1, extra: true }, { strict: true })), [
      '/extra property "extra" is not in the schema',
    ]);
  });

  it('applies nullable, enum, items and minItems', () => {
    const schema: SchemaObject = { type: 'array', minItems: 1, items: { type: 'string', enum: ['open', 'closed'], nullable: true } };
    assert.deepEqual(validator.validate(schema, ['open', null]), []);
    assert.deepEqual(messages(validator.validate(schema, [])), [' fewer than 1 items']);
    assert.deepEqual(messages(validator.validate(schema, ['merged'])), ['/0 "merged" is not one of ["open","closed"]']);
    assert.deepEqual(messages(validator.validate({ type: 'string' }, null)), [' expected string, got null null']);
  });

  it('applies oneOf (exactly one), anyOf (at least one) and allOf (all, with strict keys over the union)', () => {
    const oneOf: SchemaObject = {
      oneOf: [{ type: 'string' }, { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] }],
    };
    assert.deepEqual(validator.validate(oneOf, 'bug'), []);
    assert.deepEqual(validator.validate(oneOf, { name: 'bug' }, { strict: true }), []);
    assert.equal(validator.validate(oneOf, 42).length, 1);
    assert.match(
      validator.validate({ oneOf: [{ type: 'number' }, { type: 'integer' }] }, 3)[0]?.message ?? '',
      /matches 2 oneOf alternatives/,
    );
    assert.deepEqual(validator.validate({ anyOf: [{ type: 'number' }, { type: 'integer' }] }, 3), []);
    const allOf: SchemaObject = { allOf: [ref('named'), ref('aged')] };
    assert.deepEqual(validator.validate(allOf, { name: 'x', age: 3 }, { strict: true }), []);
    assert.deepEqual(messages(validator.validate(allOf, { name: 'x', age: -1 })), ['/age less than 0']);
    assert.deepEqual(messages(validator.validate(allOf, { name: 'x', other: 1 }, { strict: true })), [
      '/other property "other" is not in the schema',
    ]);
  });

  it('reports a schema keyword it does not implement instead of passing silently', () => {
    const found = validator.validate({ type: 'string', contentEncoding: 'base64' } as SchemaObject, 'x');
    assert.match(found[0]?.message ?? '', /keyword "contentEncoding"/);
  });

  it('checks date-time and uri formats', () => {
    assert.equal(validator.validate({ type: 'string', format: 'date-time' }, '2026-11-21T10:00:00Z').length, 0);
    assert.equal(validator.validate({ type: 'string', format: 'date-time' }, 'yesterday').length, 1);
    assert.equal(validator.validate({ type: 'string', format: 'uri' }, 'not a uri').length, 1);
  });
});

describe('GitHub description checks (real @octokit/openapi document)', () => {
  let description: GitHubDescription;
  before(() => {
    description = new GitHubDescription();
  });
  const request = (method: string, path: string, body?: unknown, query = '') => ({
    method,
    path,
    query: new URLSearchParams(query),
    contentType: body === undefined ? undefined : 'application/json',
    body,
    rawBodyLength: body === undefined ? 0 : JSON.stringify(body).length,
  });

  it('finds operations, preferring literal segments', () => {
    assert.equal(description.match('GET', '/repos/o/r/pulls/comments').match?.operation.operationId, 'pulls/list-review-comments-for-repo');
    assert.equal(description.match('GET', '/repos/o/r/pulls/12').match?.operation.operationId, 'pulls/get');
    assert.equal(description.match('GET', '/repos/o/r/commits/abc/check-runs').match?.operation.operationId, 'checks/list-for-ref');
  });

  it('accepts a pull request the way octokit sends it', () => {
    const check = description.checkRequest(
      request('POST', '/repos/o/r/pulls', { title: 't', head: 'b', base: 'main', body: 'x', draft: true }),
    );
    assert.deepEqual(check.violations, []);
    assert.equal(check.params.owner, 'o');
  });

  it('rejects a wrong type and a missing required field in a request body', () => {
    const wrongType = description.checkRequest(request('POST', '/repos/o/r/pulls', { head: 'b', base: 'main', draft: 'yes' }));
    assert.equal(wrongType.status, 422);
    assert.match(wrongType.violations.join('\n'), /\/draft: expected boolean, got string/);
    const missing = description.checkRequest(request('POST', '/repos/o/r/pulls', { title: 't', head: 'b' }));
    assert.match(missing.violations.join('\n'), /missing required property "base"/);
  });

  it('rejects draft on PATCH /pulls: the REST API cannot un-draft', () => {
    const check = description.checkRequest(request('PATCH', '/repos/o/r/pulls/3', { draft: false }));
    assert.match(check.violations.join('\n'), /property "draft" is not in the schema/);
  });

  it('rejects bad parameters, unknown query parameters, unknown paths and methods', () => {
    assert.match(
      description.checkRequest(request('GET', '/repos/o/r/pulls', undefined, 'state=merged')).violations.join(),
      /"merged" is not one of/,
    );
    assert.match(description.checkRequest(request('GET', '/repos/o/r/pulls/abc')).violations.join(), /pull_number: expected integer/);
    assert.match(
      description.checkRequest(request('GET', '/repos/o/r/pulls', undefined, 'colour=red')).violations.join(),
      /query parameter "colour" is not in the description/,
    );
    assert.equal(description.checkRequest(request('GET', '/nowhere/at/all')).status, 404);
    assert.equal(description.checkRequest(request('DELETE', '/repos/o/r/pulls/1')).status, 405);
  });

  it('checks responses against the status’s schema', () => {
    const match = description.match('POST', '/repos/o/r/pulls').match;
    assert.ok(match);
    assert.match(description.checkResponse(match, 201, { number: 1 }).join('\n'), /missing required property "url"/);
    assert.deepEqual(
      description.checkResponse(match, 422, {
        message: 'Validation Failed',
        documentation_url: 'https://docs.github.com/rest',
        errors: [{ code: 'invalid', field: 'base' }],
      }),
      [],
    );
    assert.match(description.checkResponse(match, 422, { message: 'Validation Failed' }).join(), /documentation_url/);
    assert.match(description.checkResponse(match, 204, undefined).join(), /status 204 is not in the description/);
  });
});

describe('GitHub stand-in server', function () {
  this.timeout(20_000);
  let standIn: GitHubStandIn;
  let repo: LaneRepo;
  const token = 'standin-test-token-0123456789';

  beforeEach(async () => {
    repo = createLaneRepo();
    repo.git('push', '--quiet', repo.bareDir, repo.branch);
    standIn = await startGitHubStandIn({ bareRepoDir: repo.bareDir, token });
  });
  afterEach(async () => {
    await standIn.close();
    repo.cleanup();
  });

  const call = async (method: string, path: string, body?: unknown, auth = token) => {
    const response = await fetch(`${standIn.url}${path}`, {
      method,
      headers: { authorization: `token ${auth}`, 'content-type': 'application/json', accept: 'application/vnd.github+json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, headers: response.headers, json: (await response.json()) as Record<string, unknown> };
  };

  it('serves a full round trip whose every request and response follows the description', async () => {
    const created = await call('POST', `/repos/${standIn.owner}/${standIn.repo}/pulls`, {
      title: 'T',
      head: repo.branch,
      base: 'main',
      body: 'B',
      draft: true,
    });
    assert.equal(created.status, 201);
    assert.equal(created.json.head && (created.json.head as { sha: string }).sha, repo.headSha);
    assert.equal((await call('GET', `/repos/${standIn.owner}/${standIn.repo}`)).status, 200);
    assert.equal(
      (await call('POST', `/repos/${standIn.owner}/${standIn.repo}/issues/1/labels`, { labels: ['a', { name: 'b' }] })).status,
      200,
    );
    assert.equal(
      (await call('POST', `/repos/${standIn.owner}/${standIn.repo}/pulls/1/requested_reviewers`, { reviewers: ['alice'] })).status,
      201,
    );
    standIn.setCommitStatus(repo.headSha, { context: 'ci/build', state: 'pending' });
    standIn.setCheckRun(repo.headSha, { name: 'test', status: 'completed', conclusion: 'success' });
    assert.equal((await call('GET', `/repos/${standIn.owner}/${standIn.repo}/commits/${repo.headSha}/status`)).json.state, 'pending');
    assert.equal((await call('GET', `/repos/${standIn.owner}/${standIn.repo}/commits/${repo.headSha}/check-runs`)).json.total_count, 1);
    const merged = standIn.mergePullRequest(1);
    assert.equal((await call('GET', `/repos/${standIn.owner}/${standIn.repo}/pulls/1`)).json.merged, merged.merged);
    assert.deepEqual(standIn.state.violations, []);
    assert.ok(standIn.state.requests.every((request) => request.authorized));
  });

  it('refuses and records a request body that breaks the schema, so the double cannot drift', async () => {
    const response = await call('POST', `/repos/${standIn.owner}/${standIn.repo}/pulls`, {
      title: 'T',
      head: repo.branch,
      base: 'main',
      draft: 'true',
    });
    assert.equal(response.status, 422);
    assert.match(String(response.json.message), /draft: expected boolean/);
    assert.equal(standIn.state.violations.length, 1);
    assert.equal(standIn.state.pullRequests.length, 0);
  });

  it('answers 401 with GitHub’s shape to a wrong token', async () => {
    const response = await call('GET', `/repos/${standIn.owner}/${standIn.repo}`, undefined, 'wrong');
    assert.equal(response.status, 401);
    assert.equal(response.json.message, 'Bad credentials');
    assert.deepEqual(standIn.state.violations, []);
  });

  it('injects faults in GitHub’s error shapes, with retry-after for a secondary rate limit', async () => {
    standIn.setFault({ operation: 'repos/get', kind: 'secondaryRateLimit', retryAfterSeconds: 7 });
    const limited = await call('GET', `/repos/${standIn.owner}/${standIn.repo}`);
    assert.equal(limited.status, 403);
    assert.equal(limited.headers.get('retry-after'), '7');
    assert.match(String(limited.json.message), /secondary rate limit/);
    standIn.setFault({
      operation: 'pulls/create',
      kind: 'validation',
      errors: [{ resource: 'PullRequest', code: 'custom', message: 'nope' }],
    });
    const invalid = await call('POST', `/repos/${standIn.owner}/${standIn.repo}/pulls`, { title: 'T', head: repo.branch, base: 'main' });
    assert.equal(invalid.status, 422);
    assert.deepEqual(invalid.json.errors, [{ resource: 'PullRequest', code: 'custom', message: 'nope' }]);
    standIn.setFault({ operation: 'repos/get', kind: 'network' });
    await assert.rejects(fetch(`${standIn.url}/repos/${standIn.owner}/${standIn.repo}`, { headers: { authorization: `token ${token}` } }));
    assert.equal((await call('GET', `/repos/${standIn.owner}/${standIn.repo}`)).status, 200, 'a fault hits only as many times as asked');
    assert.deepEqual(standIn.state.violations, []);
  });

  it('acts like GitHub on duplicates, unknown branches and bodies over the limit', async () => {
    const path = `/repos/${standIn.owner}/${standIn.repo}/pulls`;
    assert.equal((await call('POST', path, { title: 'T', head: repo.branch, base: 'main' })).status, 201);
    const duplicate = await call('POST', path, { title: 'T', head: repo.branch, base: 'main' });
    assert.equal(duplicate.status, 422);
    assert.match(JSON.stringify(duplicate.json.errors), /A pull request already exists/);
    assert.match(JSON.stringify((await call('POST', path, { title: 'T', head: 'nope', base: 'main' })).json.errors), /"field":"head"/);
    assert.match(
      JSON.stringify((await call('POST', path, { title: 'T', head: repo.branch, base: 'release' })).json.errors),
      /"field":"base"/,
    );
    assert.match(JSON.stringify((await call('PATCH', `${path}/1`, { body: 'x'.repeat(65_537) })).json.errors), /body is too long/);
    assert.equal((await call('GET', `/repos/someone/else`)).status, 404);
    assert.deepEqual(standIn.state.violations, []);
  });

  it('serves only the markPullRequestReadyForReview GraphQL mutation, checked by hand', async () => {
    await call('POST', `/repos/${standIn.owner}/${standIn.repo}/pulls`, { title: 'T', head: repo.branch, base: 'main', draft: true });
    const nodeId = standIn.state.pullRequests[0]?.nodeId;
    const graphql = async (body: unknown) =>
      (
        await fetch(`${standIn.webUrl}/api/graphql`, {
          method: 'POST',
          headers: { authorization: `bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).json() as Promise<Record<string, unknown>>;
    const done = await graphql({
      query: 'mutation($id: ID!) { markPullRequestReadyForReview(input: { pullRequestId: $id }) { pullRequest { number isDraft } } }',
      variables: { id: nodeId },
    });
    assert.deepEqual(done, { data: { markPullRequestReadyForReview: { pullRequest: { number: 1, isDraft: false } } } });
    assert.deepEqual(standIn.state.violations, []);
    const other = await graphql({ query: '{ viewer { login } }' });
    assert.ok(Array.isArray(other.errors));
    assert.equal(standIn.state.violations.length, 1);
  });
});

describe('GitHub stand-in for the demo', function () {
  this.timeout(20_000);

  it('plays CI on a new pull request: a check run starts, then passes', async () => {
    const repo = createLaneRepo();
    repo.git('push', '--quiet', repo.bareDir, repo.branch);
    const standIn = await startGitHubStandIn({ bareRepoDir: repo.bareDir, simulateChecks: { delayMs: 50 } });
    try {
      const headers = { authorization: 'token any', 'content-type': 'application/json' };
      const created = await fetch(`${standIn.url}/repos/${standIn.owner}/${standIn.repo}/pulls`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ title: 'T', head: repo.branch, base: 'main' }),
      });
      assert.equal(created.status, 201);
      assert.deepEqual(
        standIn.state.checkRuns.get(repo.headSha)?.map((run) => `${run.name}:${run.status}`),
        ['ci/test:in_progress'],
      );
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.deepEqual(
        standIn.state.checkRuns.get(repo.headSha)?.map((run) => `${run.status}:${run.conclusion}`),
        ['completed:success'],
      );
      assert.deepEqual(standIn.state.violations, []);
    } finally {
      await standIn.close();
      repo.cleanup();
    }
  });
});

describe('GraphQL mutation shape check', () => {
  it('accepts the mutation with a declared variable and known fields', () => {
    const parsed = parseReadyForReview({
      query: 'mutation M($p: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $p}) { pullRequest { id number isDraft } } }',
      variables: { p: 'PR_1' },
    });
    assert.deepEqual(parsed, {
      ok: true,
      value: { pullRequestId: 'PR_1', fields: ['id', 'number', 'isDraft'], clientMutationId: undefined, selectsClientMutationId: false },
    });
  });

  it('rejects unknown fields, undeclared or missing variables and extra body keys', () => {
    const fail = (body: unknown) => {
      const parsed = parseReadyForReview(body);
      assert.equal(parsed.ok, false);
      return parsed.ok ? '' : parsed.errors.join('\n');
    };
    const query = 'mutation($p: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $p}) { pullRequest { number mergeable } } }';
    assert.match(fail({ query, variables: { p: 'x' } }), /Field 'mergeable' doesn't exist/);
    assert.match(fail({ query: query.replace(' mergeable', ''), variables: {} }), /\$p \(pullRequestId\) must be a non-empty string/);
    assert.match(fail({ query: query.replace(' mergeable', ''), variables: { p: 'x', q: 1 } }), /\$q is not declared/);
    assert.match(fail({ query: query.replace(' mergeable', ''), variables: { p: 'x' }, extensions: {} }), /unexpected key "extensions"/);
  });
});
