/**
 * Promotion as an operating metric: how changes move through the lanes,
 * computed from audit events one at a time. The reducer keeps one small
 * record per change (keyed by repository and change id), never the events,
 * so its memory grows with the number of changes, not with the log.
 */

import { INTACT_VERDICTS, intactFigure, type IntactFigure, type IntactVerdict } from './intact';

/** The part of an audit event the metrics read. */
export interface MetricsEvent {
  action: string;
  at: string;
  /** Date.parse(at), when the reader has it already. */
  time?: number;
  changeId?: string;
  details: Record<string, unknown>;
  policy?: string;
}

export const STAGES = ['drafted', 'sandboxPassed', 'approved', 'prOpened', 'merged'] as const;
type Stage = (typeof STAGES)[number];
const LANE_NAMES = ['draft', 'sandbox', 'review', 'pullRequest'] as const;
type LaneName = (typeof LANE_NAMES)[number];
export const GROUP_BY = ['agent', 'repository', 'taskClass', 'period'] as const;
export type GroupBy = (typeof GROUP_BY)[number];
/** @internal Exported for its unit tests. */
export const UNCLASSIFIED = 'unclassified';

interface StageFigure {
  stage: Stage;
  /** Changes that reached the stage. */
  count: number;
  /** count ÷ the previous stage's count (undefined for drafted or when the previous is 0). */
  conversion?: number;
  /** Of those that reached it, the share that did so with no setback since the previous stage. */
  firstPassRate?: number;
  /** With `keepChanges`: the changes counted, and those of them that reached the stage on first pass. */
  changeIds?: string[];
  firstPassIds?: string[];
}

interface ReasonFigure {
  rule: string;
  effect: string;
  /** "id@version" of the policy level the rule came from. */
  policy: string;
  count: number;
  /** How many changes it hit. */
  changes: number;
  /** With `keepChanges`: the changes it hit. */
  changeIds?: string[];
}

export interface Summary {
  count: number;
  mean?: number;
  median?: number;
  p90?: number;
}

interface GroupMetrics {
  key: string;
  changes: number;
  /** With `keepChanges`: the changes counted in `changes`. */
  changeIds?: string[];
  funnel: StageFigure[];
  reasons: ReasonFigure[];
  rework: {
    requestedChangesRounds: number;
    changesWithRequestedChanges: number;
    agentReruns: number;
    editsAfterApproval: number;
    /** With `keepChanges`: the changes behind each figure (both review figures: the changes sent back). */
    changeIds?: { requestedChanges: string[]; agentReruns: string[]; editsAfterApproval: string[] };
  };
  /** Hours spent in each lane, over the stays that ended (a change still in a lane is not counted for that stay). */
  laneHours: Record<LaneName, Summary>;
  /** Changed lines (additions + deletions) and files per pull request, when the decision facts recorded them. */
  prLines: Summary;
  prFiles: Summary;
  /** Merged changes that stood for N days, when the report was asked with git (`--git`). */
  intact?: IntactFigure;
}

/** A merged change and what the log says git needs to measure it (MetricsReducer with keepMerges). */
export interface MergedChange {
  /** The reducer's handle of the change, for `report`'s intact verdicts. */
  row: number;
  repository: string;
  changeId: string;
  mergeCommitSha?: string;
  baseRef?: string;
}

export interface MetricsReport {
  by: GroupBy;
  events: number;
  groups: GroupMetrics[];
  /** With `keepChanges`: each change the report counts, for a list of the changes behind a figure. */
  changes?: ChangeSummary[];
}

/** A change as the metrics know it (its title is in the change store, not in the reducer). */
export interface ChangeSummary {
  id: string;
  repository: string;
  agent: string;
  taskClass: string;
  /** Its lane after the last event read; unknown when the log did not record its creation. */
  lane: LaneName | 'closed' | 'unknown';
  /** The furthest stage it reached. */
  stage?: Stage;
  /** Its creation (or first event), ISO. */
  createdAt: string;
}

/** Which changes a report counts: each condition given must hold. */
export interface MetricsFilter {
  agent?: string;
  taskClass?: string;
  /** YYYY-MM of the change's creation. */
  period?: string;
  /** Created at or after this time (epoch ms); needs `keepChanges`. */
  since?: number;
}

export interface MetricsReducerOptions {
  /**
   * Keep each change's id and creation time, so a report names the changes behind each figure and can filter by
   * time. About 45 bytes more a change: for one repository's log (the editor's view), off for the CLI's big runs.
   */
  keepChanges?: boolean;
  /** Keep each merged change's merge commit and base branch, for the intact rate (`mergedChanges`). */
  keepMerges?: boolean;
}

const NO_AGENT = 'unknown';
/** Lane codes in the per-change arrays: LANE_NAMES indexes, then these. */
const CLOSED = 4;
const NO_LANE = -1;

/** Strings held once, by number (agents, task classes, months, repositories, block reasons). */
class Interner {
  private readonly ids = new Map<string, number>();
  readonly values: string[] = [];
  /** The value's number, or undefined when it was never seen. */
  find(value: string): number | undefined {
    return this.ids.get(value);
  }
  id(value: string): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.ids.set(value, id);
      this.values.push(value);
    }
    return id;
  }
}

/**
 * Change ids as the product makes them (8 lower-case hex digits, 4 random bytes) → row, in an
 * open-addressing table of typed arrays: 8 bytes a slot, where a Map holds a string per id.
 */
class HexIdTable {
  private keys = new Uint32Array(1024);
  private rows = new Int32Array(1024).fill(-1);
  private size = 0;

  /** The id's number, or -1 when it is not 8 lower-case hex digits. */
  static parse(id: string): number {
    if (id.length !== 8) return -1;
    let value = 0;
    for (let i = 0; i < 8; i++) {
      const c = id.charCodeAt(i);
      const digit = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
      if (digit < 0) return -1;
      value = value * 16 + digit;
    }
    return value;
  }

  private slot(key: number): number {
    const mask = this.keys.length - 1;
    // Fibonacci hashing: the top bits of the product, which every bit of the key moves.
    let slot = Math.imul(key, 0x9e3779b1) >>> Math.clz32(mask);
    while (this.rows[slot] !== -1 && this.keys[slot] !== key) slot = (slot + 1) & mask;
    return slot;
  }

  get(key: number): number {
    return this.rows[this.slot(key)]!;
  }

  set(key: number, row: number): void {
    if ((this.size + 1) * 2 > this.keys.length) {
      const keys = this.keys;
      const rows = this.rows;
      this.keys = new Uint32Array(keys.length * 2);
      this.rows = new Int32Array(keys.length * 2).fill(-1);
      for (let i = 0; i < keys.length; i++) if (rows[i] !== -1) this.place(keys[i]!, rows[i]!);
    }
    this.place(key, row);
    this.size++;
  }

  private place(key: number, row: number): void {
    const slot = this.slot(key);
    this.keys[slot] = key;
    this.rows[slot] = row;
  }
}

/** One repository's changes: product-made ids in the table, any other id in a Map. */
interface RepositoryRows {
  hex: HexIdTable;
  other: Map<string, number>;
}

function grow<T extends Uint8Array | Int8Array | Int32Array | Uint32Array | Float64Array>(array: T, size: number): T {
  const bigger = new (array.constructor as new (n: number) => T)(size);
  bigger.set(array);
  return bigger;
}

/**
 * Folds audit events into per-change records; `report()` groups them. A
 * change is a row in typed arrays (its strings interned), about 100 bytes,
 * so 800,000 changes take some 80 MB; no event is kept.
 */
export class MetricsReducer {
  /** repository → change id → row. */
  private readonly rows = new Map<string, RepositoryRows>();
  private readonly strings = new Interner();
  private readonly noAgent = this.strings.id(NO_AGENT);
  private readonly unclassified = this.strings.id(UNCLASSIFIED);
  private lastRepository: string | undefined;
  private lastRepositoryId = 0;
  private lastRows: RepositoryRows = { hex: new HexIdTable(), other: new Map() };
  private events = 0;
  private size = 0;
  private capacity = 1024;
  private repository = new Uint32Array(this.capacity);
  private agent = new Uint32Array(this.capacity);
  private taskClass = new Uint32Array(this.capacity);
  /** YYYY-MM of the change's creation (or first event), interned. */
  private period = new Uint32Array(this.capacity);
  /** Index into STAGES of the furthest stage reached, -1 before change.create. */
  private stage = new Int8Array(this.capacity);
  /** Bit i: stage i was reached with no setback since the stage before it. */
  private firstPass = new Uint8Array(this.capacity);
  /** Lane code: 0-3 LANE_NAMES, CLOSED, NO_LANE. */
  private lane = new Int8Array(this.capacity);
  private setbacks = new Uint32Array(this.capacity);
  private requestChanges = new Uint32Array(this.capacity);
  private agentRuns = new Uint32Array(this.capacity);
  private editsAfterApproval = new Uint32Array(this.capacity);
  private laneSince = new Float64Array(this.capacity);
  /** Four per change: milliseconds in each lane. */
  private laneMs = new Float64Array(this.capacity * 4);
  /** Files (-1 when not recorded) and changed lines (NaN) of the last pull-request decision's facts. */
  private prFiles = new Int32Array(this.capacity);
  private prLines = new Float64Array(this.capacity);
  /**
   * The change's non-allow decisions, counted by reason ("rule|effect|policy", interned): a list per
   * change in typed arrays, from reasonHead (entry + 1; 0 for none) through reasonNext.
   */
  private reasonHead = new Uint32Array(this.capacity);
  private reasonNext = new Uint32Array(256);
  private reasonId = new Uint32Array(256);
  private reasonCount = new Uint32Array(256);
  private reasonSize = 0;
  /** Merged changes' merge commit and base branch, by row: kept only when asked (the intact rate needs them). */
  private readonly merges: Map<number, Omit<MergedChange, 'row' | 'repository'>> | undefined;

  /** With keepChanges: each row's change id, and its creation time (epoch ms). */
  private readonly ids: string[] | undefined;
  private created: Float64Array | undefined;

  constructor(options: MetricsReducerOptions = {}) {
    if (options.keepChanges) {
      this.ids = [];
      this.created = new Float64Array(this.capacity);
    }
    if (options.keepMerges) this.merges = new Map();
  }

  /** How many changes are held (the reducer's memory is proportional to this). */
  get changeCount(): number {
    return this.size;
  }

  private newRow(repository: number, period: string, time: number, changeId: string): number {
    if (this.size === this.capacity) {
      // By half: the old and new arrays are both held while copying.
      const capacity = Math.ceil(this.capacity * 1.5);
      this.repository = grow(this.repository, capacity);
      this.agent = grow(this.agent, capacity);
      this.taskClass = grow(this.taskClass, capacity);
      this.period = grow(this.period, capacity);
      this.stage = grow(this.stage, capacity);
      this.firstPass = grow(this.firstPass, capacity);
      this.lane = grow(this.lane, capacity);
      this.setbacks = grow(this.setbacks, capacity);
      this.requestChanges = grow(this.requestChanges, capacity);
      this.agentRuns = grow(this.agentRuns, capacity);
      this.editsAfterApproval = grow(this.editsAfterApproval, capacity);
      this.laneSince = grow(this.laneSince, capacity);
      this.laneMs = grow(this.laneMs, capacity * 4);
      this.prFiles = grow(this.prFiles, capacity);
      this.prLines = grow(this.prLines, capacity);
      this.reasonHead = grow(this.reasonHead, capacity);
      if (this.created) this.created = grow(this.created, capacity);
      this.capacity = capacity;
    }
    const row = this.size++;
    this.repository[row] = repository;
    this.agent[row] = this.noAgent;
    this.taskClass[row] = this.unclassified;
    this.period[row] = this.strings.id(period);
    this.stage[row] = -1;
    this.lane[row] = NO_LANE;
    this.laneSince[row] = time;
    this.prFiles[row] = -1;
    this.prLines[row] = NaN;
    if (this.ids) {
      this.ids.push(changeId);
      this.created![row] = time;
    }
    return row;
  }

  /** One event of the log of `repository` (its repoKey, or another name for it). */
  add(repository: string, event: MetricsEvent): void {
    this.events++;
    const changeId = event.changeId;
    if (changeId === undefined) return;
    if (repository !== this.lastRepository) {
      this.lastRepository = repository;
      this.lastRepositoryId = this.strings.id(repository);
      let rows = this.rows.get(repository);
      if (!rows) this.rows.set(repository, (rows = { hex: new HexIdTable(), other: new Map() }));
      this.lastRows = rows;
    }
    const hexId = HexIdTable.parse(changeId);
    let row = hexId >= 0 ? this.lastRows.hex.get(hexId) : (this.lastRows.other.get(changeId) ?? -1);
    if (row < 0) {
      row = this.newRow(this.lastRepositoryId, event.at.slice(0, 7), event.time ?? Date.parse(event.at), changeId);
      if (hexId >= 0) this.lastRows.hex.set(hexId, row);
      else this.lastRows.other.set(changeId, row);
    }
    const details = event.details;
    switch (event.action) {
      case 'change.create': {
        if (typeof details.agentId === 'string' && details.agentId) this.agent[row] = this.strings.id(details.agentId);
        if (typeof details.taskClass === 'string' && details.taskClass) this.taskClass[row] = this.strings.id(details.taskClass);
        this.period[row] = this.strings.id(event.at.slice(0, 7));
        this.lane[row] = 0;
        this.laneSince[row] = event.time ?? Date.parse(event.at);
        if (this.created) this.created[row] = this.laneSince[row]!;
        this.reach(row, 0);
        break;
      }
      case 'agent.start':
        this.agentRuns[row]!++;
        if (this.agent[row] === this.noAgent && typeof details.agentId === 'string' && details.agentId) {
          this.agent[row] = this.strings.id(details.agentId);
        }
        break;
      case 'lane.transition': {
        const time = event.time ?? Date.parse(event.at);
        const to = details.to;
        const lane = this.lane[row]!;
        const since = this.laneSince[row]!;
        if (lane !== NO_LANE && lane !== CLOSED && Number.isFinite(time) && Number.isFinite(since)) {
          this.laneMs[row * 4 + lane] += Math.max(0, time - since);
        }
        const next = (LANE_NAMES as readonly unknown[]).indexOf(to);
        if (next >= 0) this.lane[row] = next;
        else if (to === 'closed') this.lane[row] = CLOSED;
        this.laneSince[row] = time;
        const how = details.event;
        if (how === 'sendBack' || how === 'requestChanges') this.setbacks[row]!++;
        if (details.from === 'sandbox' && to === 'review') this.reach(row, 1);
        if (how === 'pullRequestMerged') this.reach(row, 4);
        break;
      }
      case 'review.approve':
        this.reach(row, 2);
        break;
      case 'review.requestChanges':
        this.requestChanges[row]!++;
        this.setbacks[row]!++;
        break;
      case 'review.reject':
        this.setbacks[row]!++;
        break;
      case 'approval.invalidated':
        this.editsAfterApproval[row]!++;
        this.setbacks[row]!++;
        break;
      case 'push':
      case 'pr.create':
        if (details.outcome === 'failed') this.setbacks[row]!++;
        else if (event.action === 'pr.create') this.reach(row, 3);
        break;
      case 'pr.closed':
        if (details.state === 'merged') {
          this.reach(row, 4);
          this.merges?.set(row, {
            changeId,
            ...(typeof details.mergeCommitSha === 'string' ? { mergeCommitSha: details.mergeCommitSha } : {}),
            ...(typeof details.baseRef === 'string' ? { baseRef: details.baseRef } : {}),
          });
        }
        break;
      case 'policy.decision':
        this.decision(row, details, event.policy);
        break;
      default:
        break;
    }
  }

  private reach(row: number, stage: number): void {
    if (stage <= this.stage[row]!) return;
    // Skipped stages (a log that starts mid-way) count as reached, not as first pass.
    if (stage === this.stage[row]! + 1 && this.setbacks[row] === 0) this.firstPass[row]! |= 1 << stage;
    this.stage[row] = stage;
    this.setbacks[row] = 0;
  }

  private decision(row: number, details: Record<string, unknown>, policy: string | undefined): void {
    const effect = typeof details.effect === 'string' ? details.effect : 'unknown';
    const action = details.action;
    const summary = details.factsSummary as { files?: unknown; changedLines?: unknown } | undefined;
    if (
      (action === 'createPullRequest' || action === 'gate.reviewToPullRequest') &&
      (!details.facts || typeof details.facts !== 'object') &&
      typeof summary?.files === 'number' &&
      typeof summary.changedLines === 'number'
    ) {
      // Facts too large for the event are in a file beside the log; the event keeps their summary.
      this.prFiles[row] = summary.files;
      this.prLines[row] = summary.changedLines;
    } else if (
      (action === 'createPullRequest' || action === 'gate.reviewToPullRequest') &&
      details.facts &&
      typeof details.facts === 'object'
    ) {
      const files = (details.facts as { files?: unknown }).files;
      if (Array.isArray(files)) {
        let lines = 0;
        for (const file of files as { additions?: unknown; deletions?: unknown }[]) {
          lines += (typeof file?.additions === 'number' ? file.additions : 0) + (typeof file?.deletions === 'number' ? file.deletions : 0);
        }
        this.prFiles[row] = files.length;
        this.prLines[row] = lines;
      }
    }
    if (effect === 'allow') return;
    // Decisions on an agent's own calls are not gates of the change.
    if (action !== 'agentCall') this.setbacks[row]!++;
    const rules = Array.isArray(details.rules) ? (details.rules as { rule?: unknown; effect?: unknown; policy?: unknown }[]) : [];
    const seen: number[] = [];
    const note = (rule: string, ruleEffect: string, ref: string) => {
      const id = this.strings.id(`${rule}|${ruleEffect}|${ref}`);
      if (seen.includes(id)) return;
      seen.push(id);
      let last = 0;
      for (let entry = this.reasonHead[row]!; entry; entry = this.reasonNext[entry - 1]!) {
        if (this.reasonId[entry - 1] === id) {
          this.reasonCount[entry - 1]!++;
          return;
        }
        last = entry;
      }
      if (this.reasonSize === this.reasonId.length) {
        const size = this.reasonSize * 2;
        this.reasonNext = grow(this.reasonNext, size);
        this.reasonId = grow(this.reasonId, size);
        this.reasonCount = grow(this.reasonCount, size);
      }
      const entry = ++this.reasonSize;
      this.reasonId[entry - 1] = id;
      this.reasonCount[entry - 1] = 1;
      // Appended at the end of the change's list: reasons keep the order they were first seen in.
      if (last) this.reasonNext[last - 1] = entry;
      else this.reasonHead[row] = entry;
    };
    for (const rule of rules) {
      if (typeof rule?.rule !== 'string') continue;
      note(
        rule.rule,
        typeof rule.effect === 'string' ? rule.effect : effect,
        typeof rule.policy === 'string' ? rule.policy : (policy ?? '?'),
      );
    }
    if (!seen.length) note('(not recorded)', effect, policy ?? '?');
  }

  /** The merged changes (with keepMerges; a change merged without a pr.closed event has no merge commit). */
  mergedChanges(): MergedChange[] {
    const out: MergedChange[] = [];
    for (const [row, merge] of this.merges ?? []) out.push({ row, repository: this.strings.values[this.repository[row]!]!, ...merge });
    return out;
  }

  /** The values changes have for a grouping (agents, task classes, months, repositories), sorted: a filter's choices. */
  values(of: GroupBy): string[] {
    const keys = this.keysOf(of);
    const seen = new Set<number>();
    for (let row = 0; row < this.size; row++) seen.add(keys[row]!);
    return [...seen].map((key) => this.strings.values[key]!).sort(byText);
  }

  private keysOf(by: GroupBy): Uint32Array {
    return by === 'agent' ? this.agent : by === 'repository' ? this.repository : by === 'taskClass' ? this.taskClass : this.period;
  }

  /** The rows the filter lets through, as a test of a row. */
  private matcher(filter: MetricsFilter): (row: number) => boolean {
    if (filter.since !== undefined && !this.created) {
      throw new Error('A metrics filter by time needs a reducer made with { keepChanges: true } (it keeps each change’s creation time).');
    }
    // A value never seen matches no change (-2); an absent condition matches every change (-1).
    const wanted = (value: string | undefined) => (value === undefined ? -1 : (this.strings.find(value) ?? -2));
    const agent = wanted(filter.agent);
    const taskClass = wanted(filter.taskClass);
    const period = wanted(filter.period);
    const since = filter.since;
    const created = this.created;
    return (row) =>
      (agent === -1 || this.agent[row] === agent) &&
      (taskClass === -1 || this.taskClass[row] === taskClass) &&
      (period === -1 || this.period[row] === period) &&
      (since === undefined || created![row]! >= since);
  }

  /** `intact`: each merged change's verdict (by MergedChange.row); adds the intact figures to every group. */
  report(by: GroupBy, filter: MetricsFilter = {}, intact?: (row: number) => IntactVerdict): MetricsReport {
    const keys = this.keysOf(by);
    const matches = this.matcher(filter);
    const groups = new Map<number, number[]>();
    const counted: number[] = [];
    for (let row = 0; row < this.size; row++) {
      if (!matches(row)) continue;
      if (this.ids) counted.push(row);
      const key = keys[row]!;
      let list = groups.get(key);
      if (!list) groups.set(key, (list = []));
      list.push(row);
    }
    const named = [...groups].map(([key, rows]) => [this.strings.values[key]!, rows] as const);
    const out: GroupMetrics[] = [];
    for (const [key, rows] of named.sort(([a], [b]) => byText(a, b))) {
      const group = this.groupMetrics(key, rows);
      if (intact) {
        const merged = rows.filter((row) => this.stage[row] === 4);
        group.intact = intactFigure(merged.map(intact));
        // The changes behind each verdict, for the view's lists (only with keepChanges).
        if (this.ids)
          group.intact.changeIds = Object.fromEntries(
            INTACT_VERDICTS.map((verdict) => [verdict, this.idsOf(merged, (row) => intact(row) === verdict)]),
          ) as Record<IntactVerdict, string[]>;
      }
      out.push(group);
    }
    const report: MetricsReport = { by, events: this.events, groups: out };
    if (this.ids) report.changes = counted.map((row) => this.summary(row));
    return report;
  }

  private summary(row: number): ChangeSummary {
    const lane = this.lane[row]!;
    const stage = this.stage[row]!;
    const created = this.created![row]!;
    return {
      id: this.ids![row]!,
      repository: this.strings.values[this.repository[row]!]!,
      agent: this.strings.values[this.agent[row]!]!,
      taskClass: this.strings.values[this.taskClass[row]!]!,
      lane: lane === CLOSED ? 'closed' : lane === NO_LANE ? 'unknown' : LANE_NAMES[lane]!,
      ...(stage >= 0 ? { stage: STAGES[stage]! } : {}),
      createdAt: Number.isFinite(created) ? new Date(created).toISOString() : '',
    };
  }

  /** The ids of the rows that pass a test (only with keepChanges). */
  private idsOf(rows: number[], test: (row: number) => boolean): string[] {
    const ids = this.ids!;
    const out: string[] = [];
    for (const row of rows) if (test(row)) out.push(ids[row]!);
    return out;
  }

  private groupMetrics(key: string, rows: number[]): GroupMetrics {
    const funnel: StageFigure[] = [];
    let previous = 0;
    STAGES.forEach((stage, index) => {
      let count = 0;
      let first = 0;
      for (const row of rows) {
        if (this.stage[row]! < index) continue;
        count++;
        if (this.firstPass[row]! & (1 << index)) first++;
      }
      const figure: StageFigure = { stage, count };
      if (index > 0 && previous > 0) figure.conversion = round(count / previous);
      if (count > 0) figure.firstPassRate = round(first / count);
      if (this.ids) {
        figure.changeIds = this.idsOf(rows, (row) => this.stage[row]! >= index);
        figure.firstPassIds = this.idsOf(rows, (row) => this.stage[row]! >= index && (this.firstPass[row]! & (1 << index)) !== 0);
      }
      funnel.push(figure);
      previous = count;
    });
    const reasonCounts = new Map<number, { count: number; changes: number; ids?: string[] }>();
    let rounds = 0;
    let withRounds = 0;
    let reruns = 0;
    let edits = 0;
    let changes = 0;
    // Samples in typed arrays of the group's size: 800,000 changes make 6 arrays of 6.4 MB, sorted in place.
    const lanes = [0, 1, 2, 3].map(() => new Samples(rows.length));
    const prLines = new Samples(rows.length);
    const prFiles = new Samples(rows.length);
    for (const row of rows) {
      for (let entry = this.reasonHead[row]!; entry; entry = this.reasonNext[entry - 1]!) {
        const id = this.reasonId[entry - 1]!;
        let figure = reasonCounts.get(id);
        if (!figure) reasonCounts.set(id, (figure = { count: 0, changes: 0 }));
        figure.count += this.reasonCount[entry - 1]!;
        figure.changes++;
        if (this.ids) (figure.ids ??= []).push(this.ids[row]!);
      }
      const stage = this.stage[row]!;
      if (stage >= 0) changes++;
      rounds += this.requestChanges[row]!;
      if (this.requestChanges[row]) withRounds++;
      reruns += Math.max(0, this.agentRuns[row]! - 1);
      edits += this.editsAfterApproval[row]!;
      const current = this.lane[row]!;
      for (let lane = 0; lane < 4; lane++) {
        const ms = this.laneMs[row * 4 + lane]!;
        if (ms > 0 || (current !== lane && stage >= 0 && laneVisited(current, stage, lane))) lanes[lane]!.add(ms / 3_600_000);
      }
      if (!Number.isNaN(this.prLines[row])) prLines.add(this.prLines[row]!);
      if (this.prFiles[row]! >= 0) prFiles.add(this.prFiles[row]!);
    }
    const reasons: ReasonFigure[] = [...reasonCounts]
      .map(([reason, { count, changes: hit, ids }]) => {
        const [rule, effect, policy] = this.strings.values[reason]!.split('|') as [string, string, string];
        return { rule, effect, policy, count, changes: hit, ...(ids ? { changeIds: ids } : {}) };
      })
      .sort((a, b) => b.count - a.count || (a.rule < b.rule ? -1 : 1));
    const rework: GroupMetrics['rework'] = {
      requestedChangesRounds: rounds,
      changesWithRequestedChanges: withRounds,
      agentReruns: reruns,
      editsAfterApproval: edits,
    };
    if (this.ids) {
      rework.changeIds = {
        requestedChanges: this.idsOf(rows, (row) => this.requestChanges[row]! > 0),
        agentReruns: this.idsOf(rows, (row) => this.agentRuns[row]! > 1),
        editsAfterApproval: this.idsOf(rows, (row) => this.editsAfterApproval[row]! > 0),
      };
    }
    return {
      key,
      changes,
      ...(this.ids ? { changeIds: this.idsOf(rows, (row) => this.stage[row]! >= 0) } : {}),
      funnel,
      reasons,
      rework,
      laneHours: {
        draft: summarize(lanes[0]!),
        sandbox: summarize(lanes[1]!),
        review: summarize(lanes[2]!),
        pullRequest: summarize(lanes[3]!),
      },
      prLines: summarize(prLines),
      prFiles: summarize(prFiles),
    };
  }
}

/** A lane counts as visited when the change got past it (its time may round to 0). */
function laneVisited(current: number, stage: number, lane: number): boolean {
  return lane === 0 ? current !== 0 : lane === 1 ? stage >= 1 : lane === 2 ? stage >= 3 : current === CLOSED && stage >= 3;
}

class Samples {
  private readonly values: Float64Array;
  private count = 0;
  constructor(capacity: number) {
    this.values = new Float64Array(capacity);
  }
  add(value: number): void {
    this.values[this.count++] = value;
  }
  sorted(): Float64Array {
    return this.values.subarray(0, this.count).sort();
  }
}

function summarize(samples: Samples): Summary {
  const values = samples.sorted();
  if (!values.length) return { count: 0 };
  let sum = 0;
  for (const value of values) sum += value;
  const at = (p: number) => values[Math.min(values.length - 1, Math.floor(p * values.length))]!;
  return { count: values.length, mean: round(sum / values.length), median: round(at(0.5)), p90: round(at(0.9)) };
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
