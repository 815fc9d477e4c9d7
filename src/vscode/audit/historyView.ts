import type { AuditEvent } from '../../core/audit/audit';
import type { Change } from '../../core/change';
import type { DecisionRecord } from '../../core/decision';
import type { Evidence } from '../../core/evidence';
import { ACTION_LABELS, type PolicyAction } from '../../core/policy/evaluate';
import { escapeMarkdown, mdCell, mdCode } from '../../core/markdown';

/** "2026-11-21 10:04:12Z": UTC to the second, as the log stores it. */
export function formatEventTime(at: string): string {
  return at.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** Every decision on record for a change (its evidence and its last decision), each once, oldest first. */
export function decisionsOnRecord(change: Change, evidence: Evidence | undefined): DecisionRecord[] {
  const byId = new Map<string, DecisionRecord>();
  for (const decision of [...(evidence?.decisions ?? []), ...(change.lastDecision ? [change.lastDecision] : [])])
    byId.set(decision.decisionId, decision);
  return [...byId.values()].sort((a, b) => a.at.localeCompare(b.at));
}

function value(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.length ? v.map(value).join(', ') : '—';
  return JSON.stringify(v);
}

/** A decision's rules and facts in words, not its facts as JSON (they can hold 20,000 paths). */
function describeDecisionRecord(d: Record<string, unknown>, used: Set<string>, add: (text: string) => void): void {
  if (Array.isArray(d.rules)) {
    used.add('rules');
    const rules = (d.rules as { rule?: unknown; effect?: unknown; policy?: unknown }[]).map(
      (rule) => `${value(rule?.rule)} (${value(rule?.effect)}, ${value(rule?.policy)})`,
    );
    if (rules.length) add(` Rules: ${rules.join('; ')}.`);
  }
  const summary = d.factsSummary as { files?: unknown; changedLines?: unknown } | undefined;
  if (typeof d.factsSha256 === 'string') {
    for (const key of ['facts', 'factsSha256', 'factsSummary']) used.add(key);
    const size = summary ? `${value(summary.files)} files, ${value(summary.changedLines)} changed lines; ` : '';
    add(` Facts: ${size}sha256 ${d.factsSha256.slice(0, 12)}${d.facts === undefined ? ', in a file beside the log' : ''}.`);
  }
}

/** The facts of an event in one line: a sentence for the common actions, then the remaining details. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function describeEvent(event: AuditEvent): string {
  const d = event.details as Record<string, unknown>;
  const used = new Set<string>();
  const take = (key: string): string => {
    used.add(key);
    return value(d[key]);
  };
  let lead = '';
  switch (event.action) {
    case 'change.create':
      lead = `Created "${take('title')}" from ${take('baseRef')} (${take('baseSha').slice(0, 10)}) for agent ${take('agentId')}.`;
      break;
    case 'agent.start':
      lead = `Started agent ${take('agentId')}.`;
      break;
    case 'agent.stop':
      lead = `The agent stopped: ${take('outcome')}, exit code ${take('exitCode')}, ${Math.round(Number(d.durationMs ?? 0) / 100) / 10} s.`;
      used.add('durationMs');
      break;
    case 'policy.decision':
      lead = `${ACTION_LABELS[d.action as PolicyAction] ?? take('action')}: ${take('effect')}. ${take('explanation')}`;
      used.add('action');
      describeDecisionRecord(d, used, (extra) => (lead += extra));
      break;
    case 'lane.transition':
      lead = `${take('from')} → ${take('to')} (${take('event')})${d.reason ? `: ${take('reason')}` : ''}.`;
      used.add('reason');
      break;
    default:
      break;
  }
  const rest = Object.entries(d)
    .filter(([key, v]) => !used.has(key) && v !== undefined)
    .map(([key, v]) => `${key}: ${value(v)}`);
  if (event.policy) rest.push(`policy: ${event.policy}`);
  if (event.decisionId) rest.push(`decision: ${event.decisionId}`);
  return [lead, rest.join('; ')].filter(Boolean).join(' ');
}

/**
 * A change's audit events as a Markdown document: for each event when, what,
 * who and its sequence number, then its details, oldest first. `events` come from AuditLog.eventsFor (each line's
 * own hash checked).
 */
export function renderHistory(
  change: Change | undefined,
  changeId: string,
  repoName: string,
  events: readonly AuditEvent[],
  problem?: string,
): string {
  const out: string[] = [`# History: ${escapeMarkdown(change?.title ?? `change ${changeId}`)}`, ''];
  if (change) {
    out.push(
      `Change ${mdCode(change.id)} · ${change.lane === 'closed' ? `closed (${change.closedReason ?? 'closed'})` : change.lane} · created by ${escapeMarkdown(change.createdBy ?? 'unknown')} · base ${mdCode(change.baseRef)} (${change.baseSha.slice(0, 10)})`,
      '',
    );
  }
  out.push(
    `${events.length} event${events.length === 1 ? '' : 's'} from the audit log of ${escapeMarkdown(repoName)}, oldest first, times in UTC. Each event's own hash was checked; "Agent Lanes: Verify Audit Log" checks the whole chain.`,
    '',
  );
  if (problem) out.push(`> ⚠ ${escapeMarkdown(problem)}`, '');
  if (!events.length) {
    out.push('No event of this change is in the audit log.', '');
    return out.join('\n');
  }
  // One entry per event, grouped by day, instead of a table: a table's details
  // column ran off the preview's edge and squeezed each timestamp onto three lines.
  let day = '';
  for (const event of events) {
    const [date, time] = formatEventTime(event.at).replace(/Z$/, '').split(' ');
    if (date !== day) {
      day = date;
      out.push(`## ${date} (UTC)`, '');
    }
    out.push(
      `- **${time}** · ${mdCode(event.action)} · ${mdCell(`${event.actor.type} ${event.actor.id}`, 120)} · #${event.seq}  `,
      `  ${mdCell(describeEvent(event), 800)}`,
    );
  }
  out.push('');
  return out.join('\n');
}
