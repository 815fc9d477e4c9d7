/** The OTel instruments of the promotion metrics: shared by the points (lanes bundle) and the OTel bundle, so it imports nothing. */

/** counter: a cumulative count that only grows (OTel observable counter); gauge: a current value. */
type InstrumentKind = 'counter' | 'gauge';

interface InstrumentSpec {
  kind: InstrumentKind;
  unit: string;
  description: string;
}

/** The instruments the OTel bundle creates; every point names one of them. */
export const TELEMETRY_INSTRUMENTS = {
  'agent_lanes.changes.reached': {
    kind: 'counter',
    unit: '{change}',
    description: 'Changes that reached a promotion stage (agent_lanes.stage: drafted, sandboxPassed, approved, prOpened, merged).',
  },
  'agent_lanes.changes.conversion': {
    kind: 'gauge',
    unit: '1',
    description: 'Changes that reached the stage ÷ those that reached the stage before it.',
  },
  'agent_lanes.changes.first_pass_rate': {
    kind: 'gauge',
    unit: '1',
    description: 'Of the changes that reached the stage, the share that did so with no setback since the stage before it.',
  },
  'agent_lanes.policy.blocks': {
    kind: 'counter',
    unit: '{decision}',
    description: 'Policy decisions that held a change back, by rule (agent_lanes.rule, agent_lanes.effect, agent_lanes.policy).',
  },
  'agent_lanes.policy.blocked_changes': {
    kind: 'counter',
    unit: '{change}',
    description: 'Changes a rule held back at least once.',
  },
  'agent_lanes.rework.requested_changes_rounds': {
    kind: 'counter',
    unit: '{round}',
    description: 'Request Changes rounds over all changes.',
  },
  'agent_lanes.rework.changes_with_requested_changes': {
    kind: 'counter',
    unit: '{change}',
    description: 'Changes that got at least one Request Changes.',
  },
  'agent_lanes.rework.agent_reruns': { kind: 'counter', unit: '{run}', description: 'Agent runs on a change after its first.' },
  'agent_lanes.rework.edits_after_approval': {
    kind: 'counter',
    unit: '{edit}',
    description: 'Edits to a change after it was approved (the approval was invalidated).',
  },
  'agent_lanes.lane.duration': {
    kind: 'gauge',
    unit: 'h',
    description:
      'Hours a change spent in a lane (agent_lanes.lane), over the stays that ended: agent_lanes.statistic is mean, median or p90.',
  },
  'agent_lanes.pull_request.lines': {
    kind: 'gauge',
    unit: '{line}',
    description: 'Changed lines per pull request (agent_lanes.statistic: mean, median or p90).',
  },
  'agent_lanes.pull_request.files': {
    kind: 'gauge',
    unit: '{file}',
    description: 'Changed files per pull request (agent_lanes.statistic: mean, median or p90).',
  },
} satisfies Record<string, InstrumentSpec>;

export type TelemetryInstrument = keyof typeof TELEMETRY_INSTRUMENTS;
