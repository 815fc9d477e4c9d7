// The GitHub REST client: @octokit/rest with the retry and throttling
// plugins, pointed at github.com or a GitHub Enterprise host through
// `agentLanes.github.apiBaseUrl`, with every error turned into a message that
// says what to do. The token comes from the caller (VS Code's authentication
// session) and is kept out of every log line and error message.
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import type { Logger } from '../../core/logger';
import { redactText } from '../../core/redaction';
import { LaneError } from '../../core/errors';

export const DEFAULT_API_BASE_URL = 'https://api.github.com';
export const API_BASE_URL_SETTING = 'agentLanes.github.apiBaseUrl';

const LanesOctokit = Octokit.plugin(retry, throttling);
type LanesOctokit = InstanceType<typeof LanesOctokit>;

export type GitHubErrorKind =
  | 'unauthorized'
  | 'forbidden'
  | 'rateLimited'
  | 'notFound'
  | 'validation'
  | 'network'
  | 'server'
  | 'notGitHub'
  | 'badSetting'
  | 'unexpected';

/** An error whose message is fit to show to the user as is. It never carries the token or the raw request. */
export class GitHubError extends LaneError {
  override readonly name = 'GitHubError';
  constructor(
    override readonly kind: GitHubErrorKind,
    message: string,
    readonly details: {
      status?: number | undefined;
      /** GitHub's own message, e.g. "Validation Failed: A pull request already exists for o:b." */
      githubMessage?: string | undefined;
      /** Seconds GitHub asked to wait (secondary rate limit) or until the limit resets. */
      retryAfterSeconds?: number | undefined;
      requestId?: string | undefined;
    } = {},
  ) {
    super(kind, message);
  }

  get status(): number | undefined {
    return this.details.status;
  }
}

export interface GitHubRepository {
  owner: string;
  repo: string;
  /** The host the remote points at, without port. */
  host: string;
}

export interface RateLimitNotice {
  /** secondary: GitHub asked to slow down (`retry-after`); primary: the hourly budget is used up. */
  kind: 'secondary' | 'primary';
  waitSeconds: number;
  method: string;
  url: string;
  /** 1 for the first wait on a request. */
  attempt: number;
  willRetry: boolean;
}

interface RateLimitSnapshot {
  limit: number;
  remaining: number;
  /** Epoch seconds at which the budget resets. */
  resetEpochSeconds: number;
  observedAtMs: number;
}

export interface GitHubClientOptions {
  /** From vscode.authentication; never logged. */
  token: string;
  /** `agentLanes.github.apiBaseUrl`; empty means github.com. */
  apiBaseUrl?: string;
  logger: Logger;
  /** Called before every rate-limit wait, so the editor can say "GitHub asked us to wait 30 s". */
  onRateLimit?: (notice: RateLimitNotice) => void;
  /** How many times one request may wait for a secondary rate limit. Default 2. */
  maxRateLimitRetries?: number;
  /** Longest wait for the hourly (primary) limit before giving up with a message. Default 60 s. */
  maxPrimaryWaitSeconds?: number;
  /** Retries after a network failure or a 5xx. Default 3. */
  retries?: number;
  /** Base of the retry back-off in ms (waits base·1, base·4, base·9). Default 1000. */
  retryBaseMs?: number;
  /**
   * false turns the throttling plugin off: no pacing of writes (GitHub asks
   * for one write per second; the plugin waits up to 3 s between writes that
   * notify people) and no waiting on rate limits. For tests, or a GitHub
   * Enterprise Server whose rate limiting is off. Default true.
   */
  throttle?: boolean;
  /** Per-request timeout in ms. Default 30 s. */
  timeoutMs?: number;
  userAgent?: string;
}

export interface GitHubClient {
  readonly octokit: LanesOctokit;
  readonly apiBaseUrl: string;
  /** The last x-ratelimit-* headers seen, for polling within the budget. */
  rateLimit(): RateLimitSnapshot | undefined;
  /** Removes the token (and anything shaped like a secret) from a text. */
  scrub(text: string): string;
  readonly logger: Logger;
}

/** Validates and normalises `agentLanes.github.apiBaseUrl`. */
export function normalizeApiBaseUrl(value: string | undefined): string {
  const raw = (value ?? '').trim();
  if (!raw) return DEFAULT_API_BASE_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new GitHubError(
      'badSetting',
      `${API_BASE_URL_SETTING} is not a URL: "${raw}". Use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server.`,
    );
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new GitHubError(
      'badSetting',
      `${API_BASE_URL_SETTING} must use https (plain http is accepted only for a local stand-in on 127.0.0.1): "${url.origin}".`,
    );
  }
  if (url.username || url.password) {
    throw new GitHubError(
      'badSetting',
      `${API_BASE_URL_SETTING} must not contain a user name or password; Agent Lanes signs in through VS Code's accounts.`,
    );
  }
  if (url.search || url.hash)
    throw new GitHubError('badSetting', `${API_BASE_URL_SETTING} must not have a query or fragment: use https://HOST/api/v3.`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** Hosts whose remotes belong to the API at `apiBaseUrl`. */
function hostsForApi(apiBaseUrl: string): string[] {
  const host = new URL(apiBaseUrl).hostname.toLowerCase();
  if (host === 'api.github.com') return ['github.com', 'www.github.com', 'ssh.github.com'];
  // GitHub Enterprise Cloud with data residency: api.TENANT.ghe.com serves TENANT.ghe.com.
  if (host.startsWith('api.')) return [host.slice(4), host];
  return [host];
}

/** A remote URL with any user name or password removed, for messages. */
export function displayRemote(remoteUrl: string): string {
  return remoteUrl.trim().replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1');
}

/**
 * owner/repo from a GitHub remote: https://github.com/o/r(.git),
 * ssh://git@github.com/o/r.git, git@github.com:o/r.git, and the same forms
 * on the Enterprise host of `apiBaseUrl`.
 */
export function parseRemote(
  remoteUrl: string,
  apiBaseUrl: string = DEFAULT_API_BASE_URL,
  context: { remoteName?: string | undefined; branch?: string | undefined } = {},
): GitHubRepository {
  const remoteName = context.remoteName ?? 'origin';
  const pushHint = `The branch can still be pushed: git push ${remoteName} ${context.branch ?? '<branch>'}.`;
  const shown = displayRemote(remoteUrl);
  const notGitHub = (why: string): GitHubError =>
    new GitHubError(
      'notGitHub',
      `The remote "${remoteName}" (${shown || 'empty'}) ${why}, so no pull request can be opened there. ${pushHint}`,
    );

  const text = remoteUrl.trim();
  let host: string | undefined;
  let path: string | undefined;
  const scpLike = /^(?:[^@/\s]+@)?([^:/\s]{2,}):(?!\/\/)(.+)$/.exec(text);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw notGitHub('is not a URL git or Agent Lanes can read');
    }
    if (!['https:', 'http:', 'ssh:', 'git:', 'git+ssh:', 'ssh+git:'].includes(url.protocol))
      throw notGitHub(`uses ${url.protocol.replace(':', '')}, not a GitHub host`);
    host = url.hostname.toLowerCase();
    path = decodeURIComponent(url.pathname);
  } else if (scpLike?.[1] && scpLike[2]) {
    host = scpLike[1].toLowerCase();
    path = scpLike[2];
  } else {
    throw notGitHub('is a local path, not a GitHub repository');
  }

  const expected = hostsForApi(apiBaseUrl);
  if (!expected.includes(host)) {
    const configured = apiBaseUrl === DEFAULT_API_BASE_URL ? '' : ` (${API_BASE_URL_SETTING} is ${apiBaseUrl})`;
    const hint =
      host === 'github.com' && apiBaseUrl !== DEFAULT_API_BASE_URL
        ? ` Clear ${API_BASE_URL_SETTING} to use github.com.`
        : ` For GitHub Enterprise, set ${API_BASE_URL_SETTING} to https://${host}/api/v3.`;
    throw new GitHubError(
      'notGitHub',
      `The remote "${remoteName}" (${shown}) is on ${host}, not on ${expected[0]}${configured}, so no pull request can be opened there. ${pushHint}${hint}`,
    );
  }
  const parts = path
    .replace(/^\/+/, '')
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    .split('/');
  const [owner, repo] = parts;
  if (
    parts.length !== 2 ||
    !owner ||
    !repo ||
    !/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(owner) ||
    !/^[A-Za-z0-9._-]+$/.test(repo)
  ) {
    throw notGitHub(`does not name a repository as OWNER/REPO (path "${path}")`);
  }
  return { owner, repo, host };
}

/** A logger in front of another that removes the token and secret-shaped text from every line. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function tokenSafeLogger(logger: Logger, scrub: (text: string) => string): Logger {
  const render = (value: unknown): string => {
    if (value instanceof Error) return scrub(`${value.name}: ${value.message}`);
    if (typeof value === 'string') return scrub(value);
    try {
      return scrub(JSON.stringify(value) ?? String(value));
    } catch {
      return scrub(String(value));
    }
  };
  const line = (message: string | Error, args: unknown[]): string => [message, ...args].map(render).join(' ');
  return {
    trace: (message, ...args) => logger.trace(line(message, args)),
    debug: (message, ...args) => logger.debug(line(message, args)),
    info: (message, ...args) => logger.info(line(message, args)),
    warn: (message, ...args) => logger.warn(line(message, args)),
    error: (message, ...args) => logger.error(line(message, args)),
  };
}

/** @internal Exported for its unit tests; the product calls it inside this module. */
export function createScrubber(secrets: string[]): (text: string) => string {
  const literals = secrets.filter((secret) => secret.length >= 4).sort((a, b) => b.length - a.length);
  return (text) => {
    let result = text;
    for (const secret of literals) result = result.split(secret).join('[REDACTED:token]');
    return redactText(result).text;
  };
}

export function createGitHubClient(options: GitHubClientOptions): GitHubClient {
  if (!options.token || /\s/.test(options.token)) {
    throw new GitHubError('unauthorized', 'No usable GitHub token was supplied. Sign in to GitHub (Accounts menu) and try again.');
  }
  const apiBaseUrl = normalizeApiBaseUrl(options.apiBaseUrl);
  const scrub = createScrubber([options.token]);
  const logger = tokenSafeLogger(options.logger, scrub);
  const maxRateLimitRetries = options.maxRateLimitRetries ?? 2;
  const maxPrimaryWaitSeconds = options.maxPrimaryWaitSeconds ?? 60;
  const timeoutMs = options.timeoutMs ?? 30_000;
  let snapshot: RateLimitSnapshot | undefined;

  const notify = (
    kind: RateLimitNotice['kind'],
    waitSeconds: number,
    request: { method?: string; url?: string },
    retryCount: number,
    willRetry: boolean,
  ) => {
    const notice: RateLimitNotice = {
      kind,
      waitSeconds,
      method: request.method ?? 'GET',
      url: scrub(request.url ?? ''),
      attempt: retryCount + 1,
      willRetry,
    };
    logger.warn(
      willRetry
        ? `GitHub ${kind === 'secondary' ? 'asked to slow down (secondary rate limit)' : 'rate limit used up'}: waiting ${waitSeconds} s before retrying ${notice.method} ${notice.url}`
        : `GitHub ${kind} rate limit on ${notice.method} ${notice.url}: not retrying (wait ${waitSeconds} s)`,
    );
    try {
      options.onRateLimit?.(notice);
    } catch (error) {
      logger.error('onRateLimit listener failed', error);
    }
  };

  const octokit = new LanesOctokit({
    auth: options.token,
    baseUrl: apiBaseUrl,
    userAgent: options.userAgent ?? 'agent-lanes',
    log: {
      debug: (message: string, ...args: unknown[]) => logger.debug(`[octokit] ${message}`, ...args),
      info: (message: string, ...args: unknown[]) => logger.info(`[octokit] ${message}`, ...args),
      warn: (message: string, ...args: unknown[]) => logger.warn(`[octokit] ${message}`, ...args),
      error: (message: string, ...args: unknown[]) => logger.error(`[octokit] ${message}`, ...args),
    },
    request: {
      // A hung connection must end in a message, not a spinner.
      fetch: (url: string | URL, init?: RequestInit) => fetch(url, { ...init, signal: init?.signal ?? AbortSignal.timeout(timeoutMs) }),
    },
    retry: { retries: options.retries ?? 3, retryAfterBaseValue: options.retryBaseMs ?? 1000 },
    throttle: {
      enabled: options.throttle ?? true,
      id: 'agent-lanes',
      onSecondaryRateLimit: (retryAfter: number, request: { method?: string; url?: string }, _octokit: unknown, retryCount: number) => {
        const willRetry = retryCount < maxRateLimitRetries;
        notify('secondary', retryAfter, request, retryCount, willRetry);
        return willRetry;
      },
      onRateLimit: (retryAfter: number, request: { method?: string; url?: string }, _octokit: unknown, retryCount: number) => {
        const willRetry = retryCount < 1 && retryAfter <= maxPrimaryWaitSeconds;
        notify('primary', retryAfter, request, retryCount, willRetry);
        return willRetry;
      },
    },
  });

  const observe = (headers: Record<string, string | number | undefined> | undefined) => {
    const limit = Number(headers?.['x-ratelimit-limit']);
    const remaining = Number(headers?.['x-ratelimit-remaining']);
    const reset = Number(headers?.['x-ratelimit-reset']);
    if (
      headers?.['x-ratelimit-remaining'] !== undefined &&
      Number.isFinite(limit) &&
      Number.isFinite(remaining) &&
      Number.isFinite(reset)
    ) {
      snapshot = { limit, remaining, resetEpochSeconds: reset, observedAtMs: Date.now() };
    }
  };
  octokit.hook.after('request', (response) => observe(response.headers as Record<string, string | number | undefined>));
  octokit.hook.error('request', (error) => {
    observe((error as { response?: { headers?: Record<string, string> } }).response?.headers);
    throw error;
  });

  return { octokit, apiBaseUrl, rateLimit: () => snapshot, scrub, logger };
}

export interface ErrorContext {
  /** What was being done, as a verb phrase: "create the pull request". */
  action: string;
  repository?: Pick<GitHubRepository, 'owner' | 'repo'>;
  base?: string;
  apiBaseUrl?: string;
}

interface RequestErrorLike {
  status?: number;
  message?: string;
  name?: string;
  response?: { headers?: Record<string, string | undefined>; data?: unknown };
  cause?: unknown;
}

function githubErrorsText(data: unknown): string {
  if (!data || typeof data !== 'object') return typeof data === 'string' ? data : '';
  const record = data as { message?: unknown; errors?: unknown };
  const parts: string[] = [];
  if (typeof record.message === 'string') parts.push(record.message);
  if (Array.isArray(record.errors)) {
    const details = record.errors.map((item) => {
      if (typeof item === 'string') return item;
      const entry = (item ?? {}) as { message?: string; field?: string; code?: string; resource?: string };
      if (entry.message) return entry.message;
      const hint =
        entry.field === 'base' && entry.code === 'invalid'
          ? ' (does the base branch exist on GitHub?)'
          : entry.field === 'head' && entry.code === 'invalid'
            ? ' (is the branch pushed?)'
            : '';
      return `${entry.field ?? entry.resource ?? 'request'} ${entry.code ?? 'invalid'}${hint}`;
    });
    if (details.length) parts.push(details.join('; '));
  }
  return parts.join(': ');
}

/** Turns whatever octokit threw into a GitHubError with a message that says what to do. */
export function toGitHubError(
  error: unknown,
  context: ErrorContext,
  scrub: (text: string) => string = (text) => redactText(text).text,
): GitHubError {
  if (error instanceof GitHubError) return error;
  const failure = (error ?? {}) as RequestErrorLike;
  const status = typeof failure.status === 'number' ? failure.status : undefined;
  const headers = failure.response?.headers ?? {};
  const data = failure.response?.data;
  const githubMessage = scrub(githubErrorsText(data) || (failure.message ?? String(error))).slice(0, 2000);
  const requestId = headers['x-github-request-id'];
  const where = context.repository ? ` in ${context.repository.owner}/${context.repository.repo}` : '';
  const host = (() => {
    try {
      return new URL(context.apiBaseUrl ?? DEFAULT_API_BASE_URL).host;
    } catch {
      return 'GitHub';
    }
  })();
  const details = { status, githubMessage, requestId };

  if (status === undefined || (status === 500 && !failure.response)) {
    const cause = scrub(failure.message ?? String(error));
    const timedOut = /timeout|timed out|aborted/i.test(cause) || failure.name === 'TimeoutError';
    return new GitHubError(
      'network',
      `Could not reach GitHub at ${host} to ${context.action}${timedOut ? ' (the request timed out)' : ''}: ${cause}. Check the network connection (and proxy) or the ${API_BASE_URL_SETTING} setting, then try again.`,
      details,
    );
  }
  const retryAfter = Number(headers['retry-after']);
  if (
    (status === 403 || status === 429) &&
    (/secondary rate limit/i.test(githubMessage) || (Number.isFinite(retryAfter) && headers['retry-after'] !== undefined))
  ) {
    const wait = Number.isFinite(retryAfter) ? retryAfter : 60;
    return new GitHubError(
      'rateLimited',
      `GitHub's secondary rate limit stopped the attempt to ${context.action}${where}, even after waiting as GitHub asked. Wait ${wait} s or more, then try again.`,
      { ...details, retryAfterSeconds: wait },
    );
  }
  if ((status === 403 || status === 429) && headers['x-ratelimit-remaining'] === '0') {
    const reset = Number(headers['x-ratelimit-reset']);
    const seconds = Number.isFinite(reset) ? Math.max(0, Math.ceil(reset - Date.now() / 1000)) : undefined;
    const when = Number.isFinite(reset) ? ` at ${new Date(reset * 1000).toISOString().slice(11, 16)} UTC` : '';
    return new GitHubError(
      'rateLimited',
      `GitHub's API rate limit for this account is used up, so Agent Lanes could not ${context.action}${where}. It resets${when}${seconds !== undefined ? ` (in ${Math.ceil(seconds / 60)} min)` : ''}; try again then.`,
      { ...details, retryAfterSeconds: seconds },
    );
  }
  switch (status) {
    case 401:
      return new GitHubError(
        'unauthorized',
        `GitHub did not accept the sign-in (401 ${githubMessage}) when trying to ${context.action}. Sign in to GitHub again (Accounts menu), then retry.`,
        details,
      );
    case 403:
      return new GitHubError(
        'forbidden',
        `GitHub refused to let the signed-in account ${context.action}${where} (403: ${githubMessage}). Ask for write access to the repository, or sign in again granting the "repo" scope (and SSO authorisation for the organisation).`,
        details,
      );
    case 404:
      return new GitHubError(
        'notFound',
        `GitHub found nothing to ${context.action}${where} (404 ${githubMessage}): the repository${context.base ? `, or the base branch "${context.base}",` : ''} does not exist or the signed-in account cannot see it. Check the remote URL${context.base ? ' and the base branch' : ''}, and that your account has access.`,
        details,
      );
    case 409:
    case 422:
      return new GitHubError(
        'validation',
        `GitHub refused to ${context.action}${where} (${status}): ${githubMessage}.`.replace(/\.\.$/, '.'),
        details,
      );
    default:
      if (status >= 500) {
        return new GitHubError(
          'server',
          `GitHub had a server error (${status}) when trying to ${context.action}, even after retrying: ${githubMessage}. Try again in a few minutes.`,
          details,
        );
      }
      return new GitHubError(
        'unexpected',
        `GitHub answered ${status} when trying to ${context.action}${where}: ${githubMessage}.`,
        details,
      );
  }
}
