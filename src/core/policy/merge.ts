import canonicalize from 'canonicalize';
import { DEFAULT_AGENT_ISOLATION } from '../draft/agentIsolation';
import { createHash } from 'node:crypto';
import YAML, { isMap, isScalar, isSeq, type Node as YamlNode } from 'yaml';
import { stricterEffect, type Effect } from '../decision';
import {
  DEFAULT_STOP_CONDITIONS,
  POLICY_API_VERSION,
  STOP_CONDITIONS,
  type PolicyDocument,
  type PreparationNetwork,
  type ResolvedPolicy,
} from './schema';

/** Where a policy comes from, from the top down. A lower level may only restrict. */
type PolicyLevel = 'builtin' | 'org' | 'repository' | 'user';
/** `default`: no level set the field; the schema's default applies. */
export type PolicyOrigin = PolicyLevel | 'default';

export interface PolicyLayer {
  level: PolicyLevel;
  document: PolicyDocument;
  /** Where the document was read from (a URL, ".lanes/policy.yaml at 1a2b3c", a setting). */
  source?: string;
}

interface LayerInfo {
  level: PolicyLevel;
  policyRef: string;
  source?: string;
  expiresAt?: string;
}

/** A lower level's attempt to loosen a field: ignored, and reported. */
interface Widening {
  level: PolicyLevel;
  field: string;
  attempted: unknown;
  kept: unknown;
  message: string;
}

export interface EffectivePolicy {
  policy: ResolvedPolicy;
  /** Field path (as formatPath writes it, `pathRules[3]`, `lanes.sandbox.limits.cpus`) → level that decided it. */
  origins: Record<string, PolicyOrigin>;
  layers: LayerInfo[];
  /** "id@version" of the base policy (org, or the built-in one). */
  policyRef: string;
  /** SHA-256 (hex) of the effective policy's RFC 8785 canonical JSON. */
  policyHash: string;
  widenings: Widening[];
}

export const policyRefOf = (document: PolicyDocument): string => `${document.metadata.id}@${document.metadata.version}`;

type Path = readonly string[];
type Combine = (kept: unknown, attempted: unknown) => { value: unknown; widened: boolean };

interface ScalarField {
  path: Path;
  fallback: unknown;
  combine: Combine;
  /** The field is not loosened but replaced (a message, a title prefix): reported as an ignored override. */
  setOnce?: boolean;
}

/** Lower index = stricter. */
const byRank =
  (ranking: readonly unknown[]): Combine =>
  (kept, attempted) => {
    const k = ranking.indexOf(kept);
    const a = ranking.indexOf(attempted);
    return a < k ? { value: attempted, widened: false } : { value: kept, widened: a > k };
  };

const smaller: Combine = (kept, attempted) => {
  if (kept === undefined) return { value: attempted, widened: false };
  return (attempted as number) <= (kept as number) ? { value: attempted, widened: false } : { value: kept, widened: true };
};

const larger: Combine = (kept, attempted) =>
  (attempted as number) >= (kept as number) ? { value: attempted, widened: false } : { value: kept, widened: true };

/** Set once, by the highest level that sets it; a lower level cannot replace it. */
const firstSet: Combine = (kept, attempted) =>
  kept === undefined ? { value: attempted, widened: false } : { value: kept, widened: attempted !== kept };

/** An allow-list: undefined allows everything; each level can only take names away. */
const intersect: Combine = (kept, attempted) => {
  const wanted = attempted as string[];
  if (kept === undefined) return { value: [...wanted], widened: false };
  const current = kept as string[];
  return { value: current.filter((item) => wanted.includes(item)), widened: wanted.some((item) => !current.includes(item)) };
};

/** Like intersect, but a level that names only backends a higher level left out changes nothing (and is reported). */
const intersectKeepingOne: Combine = (kept, attempted) => {
  const result = intersect(kept, attempted);
  return (result.value as unknown[]).length ? result : { value: kept, widened: true };
};

const preparationRank = (value: PreparationNetwork): number => (value === 'none' ? 0 : value === 'open' ? 2 : 1);
const preparation: Combine = (kept, attempted) => {
  const k = kept as PreparationNetwork;
  const a = attempted as PreparationNetwork;
  if (typeof k === 'object' && typeof a === 'object') {
    const registries = k.registries.filter((host) => a.registries.includes(host));
    return { value: registries.length ? { registries } : 'none', widened: a.registries.some((host) => !k.registries.includes(host)) };
  }
  const rk = preparationRank(k);
  const ra = preparationRank(a);
  return ra < rk ? { value: a, widened: false } : { value: k, widened: ra > rk };
};

const STRICTER_BOOLEAN_TRUE = byRank([true, false]);
const STRICTER_BOOLEAN_FALSE = byRank([false, true]);
const STRICTER_EFFECT: Combine = (kept, attempted) => {
  const value = stricterEffect(kept as Effect, attempted as Effect);
  return { value, widened: value !== attempted };
};

const SCALAR_FIELDS: readonly ScalarField[] = [
  { path: ['killSwitch', 'disableDrafts'], fallback: false, combine: STRICTER_BOOLEAN_TRUE },
  { path: ['killSwitch', 'disableSandbox'], fallback: false, combine: STRICTER_BOOLEAN_TRUE },
  { path: ['killSwitch', 'disablePullRequests'], fallback: false, combine: STRICTER_BOOLEAN_TRUE },
  { path: ['killSwitch', 'disableActions'], fallback: false, combine: STRICTER_BOOLEAN_TRUE },
  { path: ['killSwitch', 'cancelRunning'], fallback: false, combine: STRICTER_BOOLEAN_TRUE },
  { path: ['killSwitch', 'message'], fallback: undefined, combine: firstSet, setOnce: true },
  { path: ['lanes', 'allowedAgents'], fallback: undefined, combine: intersect },
  { path: ['lanes', 'sandbox', 'network', 'tasks'], fallback: 'none', combine: byRank(['none', 'open']) },
  { path: ['lanes', 'sandbox', 'network', 'preparation'], fallback: 'none', combine: preparation },
  { path: ['lanes', 'sandbox', 'limits', 'cpus'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'sandbox', 'limits', 'memoryMb'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'sandbox', 'limits', 'pids'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'sandbox', 'limits', 'timeoutSeconds'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'sandbox', 'processSandbox'], fallback: 'allowed', combine: byRank(['forbidden', 'allowed']) },
  { path: ['lanes', 'sandbox', 'devcontainer', 'allowPrivileged'], fallback: false, combine: STRICTER_BOOLEAN_FALSE },
  { path: ['lanes', 'sandbox', 'devcontainer', 'allowHostNetwork'], fallback: false, combine: STRICTER_BOOLEAN_FALSE },
  { path: ['lanes', 'sandbox', 'devcontainer', 'allowedMounts'], fallback: [], combine: intersect },
  { path: ['lanes', 'sandbox', 'devcontainer', 'allowedCapabilities'], fallback: [], combine: intersect },
  { path: ['lanes', 'sandbox', 'devcontainer', 'allowedFeatures'], fallback: [], combine: intersect },
  { path: ['lanes', 'agent', 'isolation'], fallback: [...DEFAULT_AGENT_ISOLATION], combine: intersectKeepingOne },
  { path: ['lanes', 'agent', 'image'], fallback: undefined, combine: firstSet, setOnce: true },
  { path: ['lanes', 'agent', 'network', 'allow'], fallback: [], combine: intersect },
  { path: ['lanes', 'agent', 'limits', 'cpus'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'agent', 'limits', 'memoryMb'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'agent', 'limits', 'pids'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'agent', 'limits', 'timeoutSeconds'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'agent', 'limits', 'diskMb'], fallback: undefined, combine: smaller },
  { path: ['lanes', 'approvals', 'minApprovals'], fallback: 1, combine: larger },
  { path: ['lanes', 'approvals', 'forbidSelfApproval'], fallback: false, combine: STRICTER_BOOLEAN_TRUE },
  { path: ['lanes', 'pullRequests', 'draftOnly'], fallback: false, combine: STRICTER_BOOLEAN_TRUE },
  { path: ['lanes', 'pullRequests', 'allowedBaseBranches'], fallback: undefined, combine: intersect },
  { path: ['lanes', 'pullRequests', 'titlePrefix'], fallback: undefined, combine: firstSet, setOnce: true },
  { path: ['lanes', 'pullRequests', 'secretInHistory'], fallback: 'block', combine: byRank(['block', 'squash']) },
  { path: ['blastRadius', 'maxFiles'], fallback: undefined, combine: smaller },
  { path: ['blastRadius', 'maxChangedLines'], fallback: undefined, combine: smaller },
  ...STOP_CONDITIONS.map((condition) => ({
    path: ['stopConditions', condition],
    fallback: DEFAULT_STOP_CONDITIONS[condition],
    combine: STRICTER_EFFECT,
  })),
];

interface UnionField {
  path: Path;
  /** Items with the same key are the same item. */
  key: (item: unknown) => string;
  /** For items keyed by name: a lower level's different definition is ignored and reported. */
  conflicts?: boolean;
}

const UNION_FIELDS: readonly UnionField[] = [
  { path: ['lanes', 'sandbox', 'requiredTasks'], key: (item) => (item as { id: string }).id, conflicts: true },
  { path: ['lanes', 'evidence', 'required'], key: String },
  { path: ['lanes', 'approvals', 'sensitivePathReviewers'], key: (item) => canonicalize(item) ?? '' },
  { path: ['lanes', 'pullRequests', 'labels'], key: String },
  { path: ['lanes', 'pullRequests', 'reviewers'], key: String },
  { path: ['sensitivePaths'], key: String },
  { path: ['secretPatterns'], key: (item) => canonicalize(item) ?? '' },
];

function getPath(root: unknown, path: Path): unknown {
  let current = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function setPath(root: Record<string, unknown>, path: Path, value: unknown): void {
  let current = root;
  for (const key of path.slice(0, -1)) {
    let next = current[key];
    if (next === null || typeof next !== 'object') current[key] = next = {};
    current = next as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  current[last] = value;
}

const dotted = (path: Path): string => path.join('.');
const show = (value: unknown): string => (value === undefined ? 'unset' : JSON.stringify(value));

/** Every field in document order, so the effective policy reads like a policy file. */
function skeleton(document: PolicyDocument): Record<string, unknown> {
  return {
    apiVersion: POLICY_API_VERSION,
    metadata: { ...document.metadata },
    killSwitch: {},
    lanes: {
      allowedAgents: undefined,
      sandbox: { network: {}, limits: {}, requiredTasks: undefined, processSandbox: undefined, devcontainer: {} },
      agent: { isolation: undefined, image: undefined, network: {}, limits: {} },
      evidence: {},
      approvals: {},
      pullRequests: {},
    },
    pathRules: [],
    blastRadius: {},
    stopConditions: {},
    sensitivePaths: undefined,
    secretPatterns: undefined,
    actions: [],
    taskClasses: [],
    rollout: [],
    autonomy: [],
  };
}

/**
 * Merges the levels, top down (builtin or org, then repository, then user).
 * The first layer is the base: its omissions take the schema's defaults.
 * Every later layer may only restrict; a loosening is ignored and reported.
 */
export function mergePolicies(base: PolicyLayer, overlays: readonly PolicyLayer[] = []): EffectivePolicy {
  const policy = skeleton(base.document);
  const origins: Record<string, PolicyOrigin> = {};
  const widenings: Widening[] = [];
  const layers = [base, ...overlays];
  const refs = new Map<PolicyLevel, string>(layers.map((layer) => [layer.level, policyRefOf(layer.document)]));

  const report = (
    level: PolicyLevel,
    field: string,
    attempted: unknown,
    kept: unknown,
    keptFrom: PolicyOrigin | undefined,
    setOnce = false,
  ): void => {
    const from =
      keptFrom && keptFrom !== 'default' ? ` from ${keptFrom} (${refs.get(keptFrom)})` : keptFrom === 'default' ? ' (the default)' : '';
    const why = setOnce ? 'but a higher level set it already' : 'which would loosen it';
    widenings.push({
      level,
      field,
      attempted,
      kept,
      message: `${level} policy ${refs.get(level)} tried to set ${field} to ${show(attempted)}, ${why}; kept ${show(kept)}${from}.`,
    });
  };

  for (const field of SCALAR_FIELDS) {
    const name = dotted(field.path);
    const own = getPath(base.document, field.path);
    setPath(policy, field.path, structuredClone(own ?? field.fallback));
    origins[name] = own === undefined ? 'default' : base.level;
    for (const layer of overlays) {
      const attempted = getPath(layer.document, field.path);
      if (attempted === undefined) continue;
      const kept = getPath(policy, field.path);
      const { value, widened } = field.combine(kept, attempted);
      if (widened) report(layer.level, name, attempted, value, origins[name], field.setOnce);
      if (canonicalize(value) !== canonicalize(kept)) {
        setPath(policy, field.path, structuredClone(value));
        origins[name] = layer.level;
      }
    }
  }

  for (const field of UNION_FIELDS) {
    const name = dotted(field.path);
    const items: unknown[] = [];
    const keys = new Map<string, number>();
    for (const layer of layers) {
      const own = getPath(layer.document, field.path) as unknown[] | undefined;
      for (const item of own ?? []) {
        const key = field.key(item);
        const existing = keys.get(key);
        if (existing === undefined) {
          keys.set(key, items.length);
          origins[`${name}[${items.length}]`] = layer.level;
          items.push(structuredClone(item));
        } else if (field.conflicts && canonicalize(items[existing]) !== canonicalize(item)) {
          report(layer.level, `${name}[${key}]`, item, items[existing], origins[`${name}[${existing}]`]);
        }
      }
    }
    setPath(policy, field.path, items);
    // Items carry their own origin; an empty list says who left it empty.
    if (!items.length) origins[name] = layers.find((layer) => getPath(layer.document, field.path) !== undefined)?.level ?? 'default';
  }

  // Path rules: every level's rules apply (the strictest decision wins at
  // evaluation); a rule that merely restates a stricter rule's glob with a
  // looser effect is dropped, and reported.
  const rules = policy.pathRules as ResolvedPolicy['pathRules'];
  for (const layer of layers) {
    for (const rule of layer.document.pathRules ?? []) {
      const stricter = rules.findIndex(
        (existing) => existing.glob === rule.glob && stricterEffect(existing.effect, rule.effect) !== rule.effect,
      );
      if (stricter >= 0 && origins[`pathRules[${stricter}]`] !== layer.level) {
        report(
          layer.level,
          `pathRules[${JSON.stringify(rule.glob)}]`,
          rule.effect,
          rules[stricter]!.effect,
          origins[`pathRules[${stricter}]`],
        );
        continue;
      }
      origins[`pathRules[${rules.length}]`] = layer.level;
      rules.push({ ...rule });
    }
  }
  if (!rules.length) origins.pathRules = layers.find((layer) => layer.document.pathRules !== undefined)?.level ?? 'default';
  // Actions: the base level defines them; a lower level can only keep some (list the ones it keeps). A lower level's
  // action the base does not have, or a different definition of one it has, would loosen: ignored, and reported.
  let actions = structuredClone(base.document.actions ?? []);
  origins.actions = base.document.actions ? base.level : 'default';
  for (const layer of overlays) {
    const own = layer.document.actions;
    if (!own) continue;
    for (const action of own) {
      const kept = actions.find((candidate) => candidate.id === action.id);
      if (!kept) report(layer.level, `actions[${JSON.stringify(action.id)}]`, action, undefined, origins.actions);
      else if (canonicalize(kept) !== canonicalize(action))
        report(layer.level, `actions[${JSON.stringify(action.id)}]`, action, kept, origins.actions);
    }
    const before = actions.length;
    actions = actions.filter((action) => own.some((candidate) => candidate.id === action.id));
    if (actions.length !== before) origins.actions = layer.level;
  }
  policy.actions = actions;

  // Task classes: the base level names them; a lower level's class could move a change out of a stricter class, so
  // it is ignored and reported. Rollout entries: every level's apply (each level's first match, the strictest wins).
  const taskClasses = structuredClone(base.document.taskClasses ?? []);
  origins.taskClasses = base.document.taskClasses ? base.level : 'default';
  for (const layer of overlays)
    for (const taskClass of layer.document.taskClasses ?? []) {
      const kept = taskClasses.find((candidate) => candidate.id === taskClass.id);
      if (!kept || canonicalize(kept) !== canonicalize(taskClass))
        report(layer.level, `taskClasses[${JSON.stringify(taskClass.id)}]`, taskClass, kept, origins.taskClasses);
    }
  policy.taskClasses = taskClasses;
  const rollout: ResolvedPolicy['rollout'] = [];
  for (const layer of layers)
    for (const entry of layer.document.rollout ?? []) {
      origins[`rollout[${rollout.length}]`] = layer.level;
      rollout.push(structuredClone(entry));
    }
  policy.rollout = rollout;
  // Autonomy: every level's entries apply (an entry can only lower the mode), like rollout.
  const autonomy: ResolvedPolicy['autonomy'] = [];
  for (const layer of layers)
    for (const entry of layer.document.autonomy ?? []) {
      origins[`autonomy[${autonomy.length}]`] = layer.level;
      autonomy.push(structuredClone(entry));
    }
  policy.autonomy = autonomy;
  if (!autonomy.length) origins.autonomy = layers.find((layer) => layer.document.autonomy !== undefined)?.level ?? 'default';
  if (!rollout.length) origins.rollout = layers.find((layer) => layer.document.rollout !== undefined)?.level ?? 'default';

  for (const field of ['apiVersion', 'metadata.id', 'metadata.version', 'metadata.expiresAt', 'metadata.description'])
    origins[field] = base.level;

  const resolved = policy as unknown as ResolvedPolicy;
  return {
    policy: resolved,
    origins,
    layers: layers.map((layer) => ({
      level: layer.level,
      policyRef: policyRefOf(layer.document),
      ...(layer.source ? { source: layer.source } : {}),
      ...(layer.document.metadata.expiresAt ? { expiresAt: layer.document.metadata.expiresAt } : {}),
    })),
    policyRef: policyRefOf(base.document),
    policyHash: hashPolicy(resolved),
    widenings,
  };
}

function hashPolicy(policy: ResolvedPolicy): string {
  return createHash('sha256')
    .update(canonicalize(policy) ?? '')
    .digest('hex');
}

/** The policy reference of the level that decided a field (the base's for defaults). */
export function refForOrigin(effective: EffectivePolicy, origin: PolicyOrigin | undefined): string {
  if (!origin || origin === 'default') return effective.policyRef;
  return effective.layers.find((layer) => layer.level === origin)?.policyRef ?? effective.policyRef;
}

function originComment(effective: EffectivePolicy, path: string): string | undefined {
  const origin = effective.origins[path];
  if (!origin) return undefined;
  if (origin === 'default') return ' default';
  return ` ${origin} (${refForOrigin(effective, origin)})`;
}

const LEVEL_WORDS: Record<PolicyLevel, string> = { builtin: 'built-in', org: 'org', repository: 'repository', user: 'user settings' };

/**
 * The effective policy as read-only YAML for "Show Effective Policy": a
 * header naming the levels, then each field with a comment naming the level
 * it came from (or "default").
 */
export function renderEffectivePolicyYaml(effective: EffectivePolicy): string {
  const doc = new YAML.Document(JSON.parse(JSON.stringify(effective.policy)) as unknown);
  const annotate = (node: unknown, path: string): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const childPath = path ? `${path}.${key}` : key;
        const comment = originComment(effective, childPath);
        if (isScalar(pair.value)) {
          if (comment) pair.value.comment = comment;
        } else if ((isSeq(pair.value) || isMap(pair.value)) && pair.value.items.length === 0) {
          pair.value.flow = true;
          if (comment) pair.value.comment = comment;
        } else {
          if (comment && isScalar(pair.key)) pair.key.comment = comment;
          annotate(pair.value, childPath);
        }
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => {
        const comment = originComment(effective, `${path}[${index}]`);
        if (!comment) return;
        if (isScalar(item)) item.comment = comment;
        else if (isMap(item) && item.items[0] && isScalar(item.items[0].value)) item.items[0].value.comment = comment;
        else (item as YamlNode).commentBefore = comment;
      });
    }
  };
  annotate(doc.contents, '');
  const header = [
    ' Effective Agent Lanes policy (read-only): what is enforced now.',
    ...effective.layers.map(
      (layer) =>
        `   ${LEVEL_WORDS[layer.level]}: ${layer.policyRef}${layer.source ? ` from ${layer.source}` : ''}${layer.expiresAt ? `, expires ${layer.expiresAt}` : ''}`,
    ),
    ` Hash: sha256:${effective.policyHash}`,
    ' Each field names the level it came from; "default" means no level set it.',
    ' Lower levels (repository, user settings) can only restrict what the levels above allow.',
  ];
  if (effective.widenings.length) {
    header.push(' Ignored attempts to loosen the policy:');
    for (const widening of effective.widenings) header.push(`   - ${widening.message}`);
  }
  doc.commentBefore = header.join('\n');
  return doc.toString({ lineWidth: 0 });
}
