import type { DecisionRecord } from '../../core/decision';
import { Emitter, type Disposable } from '../../core/events';
import type { Logger } from '../../core/logger';
import { builtinPolicyDocument } from '../../core/policy/defaults';
import { blockDecision, evaluate, isDraftAction, type ChangeFacts, type PolicyAction } from '../../core/policy/evaluate';
import { mergePolicies, type EffectivePolicy, type PolicyLayer } from '../../core/policy/merge';
import { parseOverlayObject, type PolicyDocument, type ResolvedPolicy } from '../../core/policy/schema';
import { fileSystemIgnoresCase } from './checkoutCase';
import { PolicyFetcher, type FetchLimits } from './policyFetcher';
import { readRepositoryPolicy, type RepositoryPolicyResult } from './repositoryPolicy';
import { LaneError } from '../../core/errors';
import { git } from '../git/gitProcess';

/** owner/repo of a remote URL (https://host/owner/repo.git, git@host:owner/repo), or undefined. */
function ownerRepoOfRemote(url: string): string | undefined {
  const match = /[:/]([^/:\s]+)\/([^/\s]+?)(?:\.git)?\/?$/.exec(url);
  return match ? `${match[1]}/${match[2]}` : undefined;
}

export { type RepositoryPolicyResult } from './repositoryPolicy';

/** The settings the service reads (the editor passes them in; this layer never reads VS Code). */
export interface PolicySettings {
  /** agentLanes.policy.endpoint; empty: the built-in local policy. */
  endpoint?: string;
  /** agentLanes.policy.publicKey; empty: signatures are not checked. */
  publicKey?: string;
  /** agentLanes.policy.refreshIntervalMinutes (at least 1; default 15). */
  refreshIntervalMinutes?: number;
  /** agentLanes.policy.user: restrictions of the user's own, in the policy document's shape. */
  user?: unknown;
}

export interface PolicyServiceOptions {
  /** File for the last good org policy, outside every worktree (the extension's global storage). */
  cacheFile: string;
  logger: Logger;
  now?: () => Date;
  limits?: Partial<FetchLimits>;
  /** Overrides refreshIntervalMinutes; for tests. */
  refreshIntervalMs?: number;
}

export type PolicyState =
  | { kind: 'local'; policyRef: string; warning?: string }
  | { kind: 'org'; policyRef: string; policyHash: string; source: 'network' | 'cache'; fetchedAt: string; warning?: string }
  | { kind: 'failClosed'; reason: string };

export type KillSwitch = ResolvedPolicy['killSwitch'];

export interface KillSwitchChange {
  previous: KillSwitch;
  current: KillSwitch;
  policyRef: string;
  at: string;
  /** Switches that went from off to on (disableDrafts, disableSandbox, disablePullRequests, disableActions, cancelRunning). */
  engaged: string[];
  /** Switches that went from on to off. */
  released: string[];
}

export interface RepositoryRef {
  repoRoot: string;
  /** The change's base commit: the repository's policy is read from it, never from a worktree. */
  baseSha: string;
}

/** Policy blocked an action; the decision's explanation says why. */
export class PolicyDeniedError extends LaneError {
  constructor(readonly decision: DecisionRecord) {
    super('policyDenied', decision.explanation);
    this.name = 'PolicyDeniedError';
  }
}

const SWITCHES = ['disableDrafts', 'disableSandbox', 'disablePullRequests', 'disableActions', 'cancelRunning'] as const;
const DEFAULT_INTERVAL_MINUTES = 15;
const REPOSITORY_CACHE_SIZE = 100;

const builtinLayer = (): PolicyLayer => ({ level: 'builtin', document: builtinPolicyDocument(), source: 'built into Agent Lanes' });

/**
 * The policy every side effect asks first. Holds where policy comes from
 * (local, org, or fail closed), refreshes the org policy on an interval and
 * on demand, and turns (action, facts) into a decision record.
 */
export class PolicyService implements Disposable {
  private readonly stateChanged = new Emitter<PolicyState>();
  /** Fires when the state changes (not when only fetchedAt moves on). */
  readonly onDidChangeState = this.stateChanged.event;
  private readonly killSwitchChanged = new Emitter<KillSwitchChange>();
  /** Fires when any kill switch field changes, so running work can be stopped and the change audited. */
  readonly onDidChangeKillSwitch = this.killSwitchChanged.event;

  private settings: PolicySettings;
  private current: PolicyState;
  private base: PolicyLayer = builtinLayer();
  private userLayer: PolicyLayer | undefined;
  private userErrors: string[] = [];
  /** Why the org policy in use is not fresh (a cached copy), apart from user-setting problems. */
  private sourceWarning: string | undefined;
  private baseEffective!: EffectivePolicy;
  private readonly repositoryPolicies = new Map<string, Promise<RepositoryPolicyResult>>();
  private readonly effectiveByRepository = new Map<string, EffectivePolicy>();
  /** Whether each checkout's file system ignores case, probed once per repository root. */
  private readonly caseByRoot = new Map<string, Promise<boolean>>();
  private readonly originByRoot = new Map<string, Promise<string | undefined>>();
  private lastKillSwitch: KillSwitch = {
    disableDrafts: false,
    disableSandbox: false,
    disablePullRequests: false,
    disableActions: false,
    cancelRunning: false,
  };
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<PolicyState> | undefined;
  /** Bumped when settings change, so a fetch started under old settings is discarded. */
  private generation = 0;
  private disposed = false;
  private readonly now: () => Date;

  constructor(
    settings: PolicySettings,
    private readonly options: PolicyServiceOptions,
  ) {
    this.now = options.now ?? (() => new Date());
    this.settings = { ...settings };
    this.readUserSettings();
    this.recompute();
    this.current = this.endpoint
      ? { kind: 'failClosed', reason: 'The org policy has not been fetched yet; only drafts are allowed until it is.' }
      : this.localState();
  }

  get state(): PolicyState {
    return this.current;
  }

  /** The effective policy without a repository level: org (or built-in) with the user's restrictions. */
  get effective(): EffectivePolicy {
    return this.baseEffective;
  }

  get killSwitch(): KillSwitch {
    return this.lastKillSwitch;
  }

  /** Problems in agentLanes.policy.user; while there are any, every action is blocked. */
  get userPolicyErrors(): readonly string[] {
    return this.userErrors;
  }

  /** Loads the policy once and starts the refresh interval. */
  async start(): Promise<PolicyState> {
    const state = await this.refresh();
    this.schedule();
    return state;
  }

  /** Fetches the org policy now ("Agent Lanes: Refresh Policy"); concurrent calls share one fetch. */
  refresh(): Promise<PolicyState> {
    this.inflight ??= this.load().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Applies changed settings; refetches when the endpoint or key changed. */
  async updateSettings(settings: PolicySettings): Promise<PolicyState> {
    const previous = this.settings;
    this.settings = { ...settings };
    this.readUserSettings();
    const sourceChanged =
      (previous.endpoint ?? '').trim() !== this.endpoint || (previous.publicKey ?? '').trim() !== (settings.publicKey ?? '').trim();
    if (previous.refreshIntervalMinutes !== settings.refreshIntervalMinutes || sourceChanged) this.schedule();
    if (!sourceChanged) {
      this.recompute();
      this.setState(this.withUserWarning(this.current));
      return this.current;
    }
    this.generation++;
    this.inflight = undefined;
    if (!this.endpoint) {
      this.apply(this.localState(), builtinLayer());
      return this.current;
    }
    this.apply(
      { kind: 'failClosed', reason: 'The policy endpoint changed; only drafts are allowed until the new policy is fetched.' },
      this.failClosedLayer(),
    );
    return this.refresh();
  }

  /**
   * The effective policy for a change: org (or built-in), then the
   * repository's `.lanes/policy.yaml` at the change's base commit, then the
   * user's settings. Not ok when a level is invalid.
   */
  async effectiveFor(repository?: RepositoryRef): Promise<{ ok: true; effective: EffectivePolicy } | { ok: false; reason: string }> {
    if (this.userErrors.length) return { ok: false, reason: this.userErrorMessage() };
    if (!repository) return { ok: true, effective: this.baseEffective };
    const key = `${repository.repoRoot}\0${repository.baseSha}`;
    const known = this.effectiveByRepository.get(key);
    if (known) return { ok: true, effective: known };
    const generation = this.generation;
    const base = this.base;
    const result = await this.repositoryPolicy(repository, key);
    if (result.kind === 'invalid') {
      const more = result.errors.length > 1 ? ` (and ${result.errors.length - 1} more)` : '';
      return { ok: false, reason: `the repository policy is invalid: ${result.errors[0]}${more}; fix it in a commit on the base branch` };
    }
    const overlays: PolicyLayer[] = [];
    if (result.kind === 'ok') overlays.push({ level: 'repository', document: result.document, source: result.source });
    if (this.userLayer) overlays.push(this.userLayer);
    const effective = mergePolicies(base, overlays);
    for (const widening of effective.widenings) this.options.logger.warn(`Policy: ${widening.message}`);
    // A refresh during the read may have replaced the base; cache only what is still current.
    if (generation === this.generation && base === this.base) {
      if (this.effectiveByRepository.size >= REPOSITORY_CACHE_SIZE) this.effectiveByRepository.clear();
      this.effectiveByRepository.set(key, effective);
    }
    return { ok: true, effective };
  }

  /** Decides an action. Never throws for a policy problem: the record says block, and why. */
  async decide(action: PolicyAction, facts: ChangeFacts = {}, repository?: RepositoryRef): Promise<DecisionRecord> {
    const now = this.now();
    this.expireIfDue(now);
    if (this.userErrors.length) {
      return blockDecision(
        action,
        facts,
        { policy: 'user-settings', rule: 'agentLanes.policy.user', effect: 'block', reason: this.userErrorMessage() },
        now,
      );
    }
    if (this.current.kind === 'failClosed' && !isDraftAction(action)) {
      return blockDecision(
        action,
        facts,
        {
          policy: this.baseEffective.policyRef,
          rule: 'failClosed',
          effect: 'block',
          reason: `the org policy is unavailable, so only drafts are allowed: ${this.current.reason}`,
        },
        now,
      );
    }
    const result = await this.effectiveFor(repository);
    facts = await this.withPathCase(facts, repository);
    if (!result.ok) {
      return blockDecision(
        action,
        facts,
        {
          policy: repository ? `repository@${repository.baseSha.slice(0, 12)}` : this.baseEffective.policyRef,
          rule: 'repositoryPolicy',
          effect: 'block',
          reason: result.reason,
        },
        now,
      );
    }
    // Rollout entries that name repositories need the change's owner/repo: read from origin once per checkout.
    if (repository && !facts.repository && result.effective.policy.rollout.some((entry) => entry.repositories)) {
      const name = await this.originRepository(repository.repoRoot);
      if (name) facts = { ...facts, repository: name };
    }
    return evaluate(result.effective, facts, action, now);
  }

  private originRepository(root: string): Promise<string | undefined> {
    let known = this.originByRoot.get(root);
    if (!known) {
      known = git(root, ['remote', 'get-url', '--', 'origin']).then(
        (result) => ownerRepoOfRemote(result.stdout.trim()),
        () => undefined,
      );
      if (this.originByRoot.size >= REPOSITORY_CACHE_SIZE) this.originByRoot.clear();
      this.originByRoot.set(root, known);
    }
    return known;
  }

  /** Decides, and throws PolicyDeniedError unless the effect is allow. Call before every side effect. */
  async assertAllowed(action: PolicyAction, facts: ChangeFacts = {}, repository?: RepositoryRef): Promise<DecisionRecord> {
    const decision = await this.decide(action, facts, repository);
    if (decision.effect !== 'allow') throw new PolicyDeniedError(decision);
    return decision;
  }

  /**
   * The facts with `caseInsensitivePaths` set when the repository's file system
   * ignores case: on such a system .GitHub/Workflows/x.yml is the folder
   * .github/workflows/** names. decide() applies it; a caller that records the
   * facts (for replay) applies it first, so the record says so too.
   */
  async withPathCase(facts: ChangeFacts, repository: RepositoryRef | undefined): Promise<ChangeFacts> {
    if (repository && facts.caseInsensitivePaths === undefined && (await this.ignoresCase(repository.repoRoot)))
      return { ...facts, caseInsensitivePaths: true };
    return facts;
  }

  private ignoresCase(root: string): Promise<boolean> {
    let known = this.caseByRoot.get(root);
    if (!known) {
      known = fileSystemIgnoresCase(root).catch(() => false);
      if (this.caseByRoot.size >= REPOSITORY_CACHE_SIZE) this.caseByRoot.clear();
      this.caseByRoot.set(root, known);
    }
    return known;
  }

  dispose(): void {
    this.disposed = true;
    this.generation++;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stateChanged.dispose();
    this.killSwitchChanged.dispose();
  }

  private get endpoint(): string {
    return (this.settings.endpoint ?? '').trim();
  }

  private async load(): Promise<PolicyState> {
    const generation = this.generation;
    this.readUserSettings();
    if (!this.endpoint) {
      this.apply(this.localState(), builtinLayer());
      return this.current;
    }
    const fetcher = new PolicyFetcher({
      endpoint: this.endpoint,
      publicKey: this.settings.publicKey,
      cacheFile: this.options.cacheFile,
      logger: this.options.logger,
      now: this.now,
      ...(this.options.limits ? { limits: this.options.limits } : {}),
    });
    let outcome: Awaited<ReturnType<PolicyFetcher['fetch']>>;
    try {
      outcome = await fetcher.fetch();
    } catch (error) {
      // The fetcher reports failures as outcomes; this is a bug, and still fails closed.
      this.options.logger.error(error as Error);
      outcome = {
        kind: 'failClosed',
        reason: `Fetching the org policy failed unexpectedly (${(error as Error).message}); only drafts are allowed. See the log.`,
      };
    }
    if (generation !== this.generation || this.disposed) return this.current;
    if (outcome.kind === 'failClosed') {
      this.options.logger.warn(`Org policy unavailable, failing closed: ${outcome.reason}`);
      this.apply({ kind: 'failClosed', reason: outcome.reason }, this.failClosedLayer(outcome.killSwitch));
      return this.current;
    }
    const layer: PolicyLayer = { level: 'org', document: outcome.document, source: this.endpoint };
    const state: PolicyState = {
      kind: 'org',
      policyRef: outcome.policyRef,
      policyHash: '',
      source: outcome.source,
      fetchedAt: outcome.fetchedAt,
      ...(outcome.warning ? { warning: outcome.warning } : {}),
    };
    this.apply(state, layer);
    return this.current;
  }

  private apply(state: PolicyState, base: PolicyLayer): void {
    this.base = base;
    this.sourceWarning = state.kind === 'failClosed' ? undefined : state.warning;
    this.recompute();
    const next = state.kind === 'org' ? { ...state, policyHash: this.baseEffective.policyHash } : state;
    this.setState(this.withUserWarning(next));
    this.noteKillSwitch(this.baseEffective);
  }

  /**
   * The built-in policy while failing closed, with every kill switch seen on
   * (in use before, or in an expired cached copy) still on: an expired policy
   * or an endpoint that is down never lifts one; only a valid policy does.
   */
  private failClosedLayer(cached?: PolicyDocument['killSwitch']): PolicyLayer {
    const layer = builtinLayer();
    const { message: _last, ...held } = this.lastKillSwitch;
    for (const name of SWITCHES) if (cached?.[name]) held[name] = true;
    if (!SWITCHES.some((name) => held[name])) return layer;
    const message = this.lastKillSwitch.message ?? cached?.message;
    const killSwitch = message === undefined ? held : { ...held, message };
    return { ...layer, document: { ...layer.document, killSwitch }, source: `${layer.source}, with the last org kill switch` };
  }

  private recompute(): void {
    this.baseEffective = mergePolicies(this.base, this.userLayer ? [this.userLayer] : []);
    for (const widening of this.baseEffective.widenings) this.options.logger.warn(`Policy: ${widening.message}`);
    this.effectiveByRepository.clear();
  }

  private readUserSettings(): void {
    const value = this.settings.user;
    const empty =
      value === undefined || value === null || (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0);
    if (empty) {
      this.userLayer = undefined;
      this.userErrors = [];
      return;
    }
    const parsed = parseOverlayObject(value, 'agentLanes.policy.user', { id: 'user-settings', version: 'local' });
    if (parsed.ok) {
      this.userLayer = { level: 'user', document: parsed.policy, source: 'agentLanes.policy.user' };
      this.userErrors = [];
    } else {
      this.userLayer = undefined;
      this.userErrors = parsed.errors;
      this.options.logger.error(`agentLanes.policy.user is invalid:\n${parsed.errors.join('\n')}`);
    }
  }

  private userErrorMessage(): string {
    const more = this.userErrors.length > 1 ? ` (and ${this.userErrors.length - 1} more)` : '';
    return `your setting agentLanes.policy.user is invalid: ${this.userErrors[0]}${more}; fix or remove it. Until then no action is allowed`;
  }

  /** The state with the current warnings: the source's own (a cached copy in use) and the user settings'. */
  private withUserWarning(state: PolicyState): PolicyState {
    if (state.kind === 'failClosed') return state;
    const { warning: _ignored, ...rest } = state;
    const warnings = [this.sourceWarning, this.userErrors.length ? this.userErrorMessage() : undefined].filter(Boolean);
    return warnings.length ? { ...rest, warning: warnings.join(' ') } : rest;
  }

  private localState(): PolicyState {
    return this.withUserWarning({ kind: 'local', policyRef: this.baseEffective.policyRef });
  }

  private setState(state: PolicyState): void {
    const key = (value: PolicyState): string => JSON.stringify({ ...value, fetchedAt: undefined });
    const changed = key(state) !== key(this.current);
    this.current = state;
    if (changed && !this.disposed) this.stateChanged.fire(state);
  }

  private noteKillSwitch(effective: EffectivePolicy): void {
    const current = { ...effective.policy.killSwitch };
    const previous = this.lastKillSwitch;
    const engaged = SWITCHES.filter((name) => current[name] && !previous[name]);
    const released = SWITCHES.filter((name) => !current[name] && previous[name]);
    const messageChanged = (current.message ?? '') !== (previous.message ?? '') && SWITCHES.some((name) => current[name]);
    this.lastKillSwitch = current;
    if ((engaged.length || released.length || messageChanged) && !this.disposed) {
      const change: KillSwitchChange = {
        previous,
        current,
        policyRef: effective.policyRef,
        at: this.now().toISOString(),
        engaged,
        released,
      };
      this.options.logger.warn(
        `Kill switch changed by ${effective.policyRef}: on [${SWITCHES.filter((name) => current[name]).join(', ')}]${current.message ? `: ${current.message}` : ''}`,
      );
      this.killSwitchChanged.fire(change);
    }
  }

  /** An org policy that expires while in use fails closed at once, not at the next refresh. */
  private expireIfDue(now: Date): void {
    if (this.current.kind !== 'org') return;
    const expiresAt = this.base.document.metadata.expiresAt;
    if (!expiresAt || Date.parse(expiresAt) > now.getTime()) return;
    this.apply(
      {
        kind: 'failClosed',
        reason: `The org policy ${this.current.policyRef} expired at ${expiresAt} and no newer one has been fetched; only drafts are allowed.`,
      },
      this.failClosedLayer(),
    );
    void this.refresh();
  }

  private repositoryPolicy(repository: RepositoryRef, key: string): Promise<RepositoryPolicyResult> {
    let pending = this.repositoryPolicies.get(key);
    if (!pending) {
      // A commit never changes, so its policy is read once.
      pending = readRepositoryPolicy(repository.repoRoot, repository.baseSha).catch((error: unknown) => ({
        kind: 'invalid' as const,
        baseSha: repository.baseSha,
        errors: [`cannot read .lanes/policy.yaml at ${repository.baseSha.slice(0, 12)}: ${(error as Error).message}`],
      }));
      if (this.repositoryPolicies.size >= REPOSITORY_CACHE_SIZE) this.repositoryPolicies.clear();
      this.repositoryPolicies.set(key, pending);
    }
    return pending;
  }

  private schedule(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.disposed || !this.endpoint) return;
    const minutes = Math.max(1, this.settings.refreshIntervalMinutes ?? DEFAULT_INTERVAL_MINUTES);
    const interval = this.options.refreshIntervalMs ?? minutes * 60_000;
    this.timer = setInterval(() => {
      this.refresh().catch((error: unknown) => this.options.logger.error(error as Error));
    }, interval);
    this.timer.unref();
  }
}
