import type { AuditEvent } from '../../core/audit/audit';
import { BUILTIN_SECRET_PATTERNS, redactValue, type SecretPattern } from '../../core/redaction';

/** An attribute value OTLP carries as it is. */
type AttributeValue = string | number | boolean;

/**
 * One audit event as an OpenTelemetry log record, in plain data: the lazily
 * loaded OTel bundle (dist/otel.js) turns these into SDK records and OTLP bytes.
 */
export interface TelemetryLogRecord {
  timeMs: number;
  /** `agent_lanes.` + the event's action, e.g. agent_lanes.lane.transition (the record's EventName). */
  eventName: string;
  /** A one-line summary: the action, the change and who. */
  body: string;
  attributes: Record<string, AttributeValue>;
}

export interface TelemetryRepository {
  name: string;
  key: string;
}

/** Every attribute Agent Lanes adds is under this namespace (OTel: a product's own attributes are prefixed). */
const NS = 'agent_lanes';
/** Detail objects deeper than this are sent as one JSON string. */
const MAX_DEPTH = 4;
/** A value longer than this is cut: a collector drops or truncates large attributes anyway. */
const MAX_VALUE_CHARS = 4096;

const cut = (text: string): string => (text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text);

/** details.a.b = 1 for { a: { b: 1 } }; arrays and deep objects as JSON. */
function flatten(prefix: string, value: unknown, out: Record<string, AttributeValue>, depth: number): void {
  if (value === null || value === undefined) return;
  if (typeof value === 'string') out[prefix] = cut(value);
  else if (typeof value === 'number' || typeof value === 'boolean') out[prefix] = value;
  else if (typeof value === 'object' && !Array.isArray(value) && depth < MAX_DEPTH) {
    for (const [key, child] of Object.entries(value)) flatten(`${prefix}.${key}`, child, out, depth + 1);
  } else out[prefix] = cut(JSON.stringify(value));
}

/**
 * The record for one sealed audit line. The event is redacted again with the
 * log's patterns (built-in and policy) before anything is taken from it: the
 * log redacts at append, and this keeps a pattern added since, or a line
 * written by an older version, from reaching the collector.
 */
export function auditLogRecord(
  line: string,
  repository: TelemetryRepository,
  patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS,
): TelemetryLogRecord {
  const sealed = JSON.parse(line) as AuditEvent;
  const { seq, hash, prevHash, at } = sealed;
  const { value: event } = redactValue(
    {
      action: sealed.action,
      actor: sealed.actor,
      changeId: sealed.changeId,
      policy: sealed.policy,
      decisionId: sealed.decisionId,
      details: sealed.details,
    },
    patterns,
  );
  const attributes: Record<string, AttributeValue> = {
    [`${NS}.audit.seq`]: seq,
    [`${NS}.audit.hash`]: hash,
    [`${NS}.audit.prev_hash`]: prevHash,
    [`${NS}.event.type`]: event.action,
    [`${NS}.actor.type`]: event.actor.type,
    [`${NS}.actor.id`]: event.actor.id,
    [`${NS}.repository.name`]: repository.name,
    [`${NS}.repository.key`]: repository.key,
  };
  if (event.changeId) attributes[`${NS}.change.id`] = event.changeId;
  if (event.policy) attributes[`${NS}.policy`] = event.policy;
  if (event.decisionId) attributes[`${NS}.decision.id`] = event.decisionId;
  flatten(`${NS}.details`, event.details, attributes, 0);
  const change = event.changeId ? ` ${event.changeId}` : '';
  return {
    timeMs: Date.parse(at),
    eventName: `${NS}.${event.action}`,
    body: cut(`${event.action}${change} by ${event.actor.type} ${event.actor.id}`),
    attributes,
  };
}
