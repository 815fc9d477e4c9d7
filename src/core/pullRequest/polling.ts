/**
 * When to look at a pull request next: back off while nothing changes, back
 * off harder after errors, wait as long as GitHub asked, and spread the polls
 * so they never eat the hourly budget the rest of the extension needs. Pure:
 * the caller supplies the clock and the last x-ratelimit-* headers.
 */

export interface PollScheduleOptions {
  /** First delay, and the delay right after a change. */
  initialMs: number;
  /** Longest delay while nothing changes. */
  maxMs: number;
  factor: number;
  /** REST requests one poll makes (pull request, statuses, check runs). */
  requestsPerPoll: number;
  /** Share of the hourly limit polling leaves untouched for everything else. */
  reserveFraction: number;
}

/** @internal Exported for its unit tests; the product calls it inside this module. */
export const DEFAULT_POLL_SCHEDULE: PollScheduleOptions = {
  initialMs: 15_000,
  maxMs: 5 * 60_000,
  factor: 2,
  requestsPerPoll: 3,
  reserveFraction: 0.2,
};

interface RateLimitReading {
  limit: number;
  remaining: number;
  /** Epoch seconds (x-ratelimit-reset). */
  resetEpochSeconds: number;
}

export interface PollContext {
  /** Polls in a row that saw no change. */
  unchangedPolls: number;
  /** Failed polls in a row. */
  consecutiveErrors: number;
  rateLimit?: RateLimitReading | undefined;
  nowMs: number;
  /** A `retry-after` GitHub sent, in seconds. */
  retryAfterSeconds?: number | undefined;
}

type PollDelayReason = 'backoff' | 'error' | 'retryAfter' | 'rateLimitBudget' | 'rateLimitExhausted';

export interface PollDelay {
  delayMs: number;
  reason: PollDelayReason;
}

export function nextPollDelay(context: PollContext, overrides: Partial<PollScheduleOptions> = {}): PollDelay {
  const options = { ...DEFAULT_POLL_SCHEDULE, ...overrides };
  const grow = (steps: number) => Math.min(options.maxMs, options.initialMs * Math.pow(options.factor, Math.max(0, Math.min(steps, 30))));
  let result: PollDelay = { delayMs: grow(context.unchangedPolls), reason: 'backoff' };
  const raise = (delayMs: number, reason: PollDelayReason) => {
    if (delayMs > result.delayMs) result = { delayMs: Math.ceil(delayMs), reason };
  };

  if (context.consecutiveErrors > 0) raise(grow(context.consecutiveErrors), 'error');
  if (context.retryAfterSeconds !== undefined && context.retryAfterSeconds > 0) raise(context.retryAfterSeconds * 1000, 'retryAfter');

  const limit = context.rateLimit;
  if (limit && Number.isFinite(limit.remaining) && Number.isFinite(limit.resetEpochSeconds)) {
    const untilReset = Math.max(0, limit.resetEpochSeconds * 1000 - context.nowMs);
    const reserve = Math.ceil(Math.max(0, limit.limit) * options.reserveFraction);
    const usable = limit.remaining - reserve;
    if (usable < options.requestsPerPoll) {
      // Wait for the reset (plus a second, as GitHub advises), however long.
      raise(untilReset + 1000, 'rateLimitExhausted');
    } else {
      const pollsLeft = Math.floor(usable / options.requestsPerPoll);
      raise(untilReset / pollsLeft, 'rateLimitBudget');
    }
  }
  return result;
}
