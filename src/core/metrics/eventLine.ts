import { z } from 'zod';
import { ActorSchema } from '../change';
import type { MetricsEvent } from './metrics';

/**
 * Reads what the metrics need from one audit line the chain verifier has
 * already accepted, without JSON.parse of the whole line (which costs more
 * than hashing it). The log writes every event in canonical form (RFC 8785:
 * members sorted, no spaces), so the top-level members come in a known order:
 * action, actor {id, type}, at, changeId?, decisionId?, details, hash,
 * policy?, prevHash, seq. Only the `details` members the reducer reads are
 * taken (a nested value through JSON.parse of its own text); the others are
 * skipped. Returns undefined for anything else: a string with an escape, a
 * member out of that order, an unknown member; the caller then parses the
 * line in full.
 */

/** The details members MetricsReducer reads: action, agentId, baseRef, effect, event, facts, factsSummary, from, mergeCommitSha, outcome, rules, state, taskClass, to (see wantedKey). */
const ACTOR_TYPES = new Set(ActorSchema.shape.type.options as readonly string[]);
// The checks of the audit event schema.
const ISO_UTC: RegExp = z.regexes.datetime({});
const POLICY_REF = /^.+@.+$/;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The last day seen ("YYYY-MM-DDT", checked by the schema's pattern) and its midnight: a log's times come in order. */
let cachedDay = 'none';
let cachedDayMs = 0;
const digit = (text: string, at: number) => text.charCodeAt(at) - 0x30;
const isDigit = (text: string, at: number) => text.charCodeAt(at) >= 0x30 && text.charCodeAt(at) <= 0x39;

/**
 * The milliseconds of an event's `at` when the audit schema accepts it (a UTC ISO time), undefined otherwise.
 * The log writes toISOString() times (YYYY-MM-DDTHH:MM:SS.sssZ); on a day already checked those are read
 * from their digits, which is what Date.parse would give. Other times go through the pattern and Date.parse.
 */
function readTime(at: string): number | undefined {
  if (
    at.length === 24 &&
    at.startsWith(cachedDay) &&
    at.charCodeAt(13) === 0x3a &&
    at.charCodeAt(16) === 0x3a &&
    at.charCodeAt(19) === 0x2e &&
    at.charCodeAt(23) === 0x5a &&
    isDigit(at, 11) &&
    isDigit(at, 12) &&
    isDigit(at, 14) &&
    isDigit(at, 15) &&
    isDigit(at, 17) &&
    isDigit(at, 18) &&
    isDigit(at, 20) &&
    isDigit(at, 21) &&
    isDigit(at, 22)
  ) {
    const hours = digit(at, 11) * 10 + digit(at, 12);
    const minutes = digit(at, 14) * 10 + digit(at, 15);
    const seconds = digit(at, 17) * 10 + digit(at, 18);
    if (hours < 24 && minutes < 60 && seconds < 60) {
      return cachedDayMs + hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + digit(at, 20) * 100 + digit(at, 21) * 10 + digit(at, 22);
    }
  }
  if (!ISO_UTC.test(at)) return undefined;
  cachedDay = at.slice(0, 11);
  cachedDayMs = Date.parse(`${at.slice(0, 10)}T00:00:00.000Z`);
  return Date.parse(at);
}

/** Where the line being read has a backslash next, at or after the last string's start (Infinity: none). */
let nextSlash = Infinity;

/** The end (closing quote) of a string member whose text starts at `from`; -1 if it holds an escape. */
function plainString(line: string, from: number): number {
  const end = line.indexOf('"', from);
  if (end < 0) return -1;
  if (nextSlash < from) {
    const slash = line.indexOf('\\', from);
    nextSlash = slash < 0 ? Infinity : slash;
  }
  return nextSlash < end ? -1 : end;
}

/** The details member named by the key text from..end if the reducer reads it, else undefined. */
function wantedKey(line: string, from: number, end: number): string | undefined {
  switch (end - from) {
    case 2:
      return line.startsWith('to', from) ? 'to' : undefined;
    case 4:
      return line.startsWith('from', from) ? 'from' : undefined;
    case 5:
      for (const key of WANTED_5) if (line.startsWith(key, from)) return key;
      return undefined;
    case 6:
      return line.startsWith('action', from) ? 'action' : line.startsWith('effect', from) ? 'effect' : undefined;
    case 7:
      for (const key of WANTED_7) if (line.startsWith(key, from)) return key;
      return undefined;
    case 9:
      return line.startsWith('taskClass', from) ? 'taskClass' : undefined;
    case 12:
      return line.startsWith('factsSummary', from) ? 'factsSummary' : undefined;
    case 14:
      return line.startsWith('mergeCommitSha', from) ? 'mergeCommitSha' : undefined;
    default:
      return undefined;
  }
}
const WANTED_5 = ['event', 'facts', 'rules', 'state'];
const WANTED_7 = ['agentId', 'outcome', 'baseRef'];

/** Index just after the JSON value starting at `at`; -1 when it is cut off. */
function skipValue(line: string, at: number): number {
  const first = line.charCodeAt(at);
  if (first === QUOTE) return skipString(line, at + 1);
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) {
    let depth = 0;
    for (let i = at; i < line.length; i++) {
      const c = line.charCodeAt(i);
      if (c === QUOTE) {
        i = skipString(line, i + 1) - 1;
        if (i < 0) return -1;
      } else if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        if (--depth === 0) return i + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null: it runs to the next separator.
  let i = at;
  while (i < line.length) {
    const c = line.charCodeAt(i);
    if (c === 0x2c /* , */ || c === 0x7d /* } */ || c === 0x5d /* ] */) break;
    i++;
  }
  return i === at || i === line.length ? -1 : i;
}

/** Index just after the closing quote of a string whose text starts at `from`; -1 when it is cut off. */
function skipString(line: string, from: number): number {
  for (let quote = line.indexOf('"', from); quote >= 0; quote = line.indexOf('"', quote + 1)) {
    // The quote ends the string unless an odd number of backslashes escapes it.
    let slashes = 0;
    while (line.charCodeAt(quote - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return quote + 1;
  }
  return -1;
}

/** An optional string member at `at`, `head` being its `,"name":"`: its value and where it ends, or undefined when absent. */
function optionalMember(line: string, at: number, head: string): { value: string; end: number } | undefined | false {
  if (!line.startsWith(head, at)) return undefined;
  const from = at + head.length;
  const end = plainString(line, from);
  if (end <= from) return false;
  return { value: line.slice(from, end), end: end + 1 };
}

/** The event of a verified audit line, or undefined when the line is not in the form above. */
export function readMetricsEvent(line: string): MetricsEvent | undefined {
  if (!line.startsWith('{"action":"')) return undefined;
  const slash = line.indexOf('\\');
  nextSlash = slash < 0 ? Infinity : slash;
  let at = 11;
  let end = plainString(line, at);
  if (end <= at) return undefined;
  const action = line.slice(at, end);
  if (!line.startsWith('","actor":{"id":"', end)) return undefined;
  at = end + 17;
  end = plainString(line, at);
  if (end < 0 || !line.startsWith('","type":"', end)) return undefined;
  at = end + 10;
  end = plainString(line, at);
  if (end < 0 || !ACTOR_TYPES.has(line.slice(at, end)) || !line.startsWith('"},"at":"', end)) return undefined;
  at = end + 9;
  end = plainString(line, at);
  if (end < 0) return undefined;
  const time = line.slice(at, end);
  const ms = readTime(time);
  if (ms === undefined) return undefined;
  at = end + 1;
  const change = optionalMember(line, at, ',"changeId":"');
  if (change === false) return undefined;
  if (change) at = change.end;
  const decision = optionalMember(line, at, ',"decisionId":"');
  if (decision === false) return undefined;
  if (decision) at = decision.end;
  if (!line.startsWith(',"details":{', at)) return undefined;
  at += 12;
  const details: Record<string, unknown> = {};
  if (line.charCodeAt(at) === 0x7d /* } */) at++;
  else {
    for (;;) {
      if (line.charCodeAt(at) !== QUOTE) return undefined;
      end = plainString(line, at + 1);
      if (end < 0 || line.charCodeAt(end + 1) !== 0x3a /* : */) return undefined;
      const key = wantedKey(line, at + 1, end);
      const valueAt = end + 2;
      let valueEnd: number;
      if (key === undefined) valueEnd = skipValue(line, valueAt);
      else if (line.charCodeAt(valueAt) === QUOTE && (valueEnd = plainString(line, valueAt + 1)) >= 0) {
        details[key] = line.slice(valueAt + 1, valueEnd);
        valueEnd++;
      } else {
        valueEnd = skipValue(line, valueAt);
        if (valueEnd < 0) return undefined;
        try {
          details[key] = JSON.parse(line.slice(valueAt, valueEnd));
        } catch {
          return undefined;
        }
      }
      if (valueEnd < 0) return undefined;
      const next = line.charCodeAt(valueEnd);
      at = valueEnd + 1;
      if (next === 0x7d /* } */) break;
      if (next !== 0x2c /* , */) return undefined;
    }
  }
  // The event's own hash (already checked by the verifier), then the policy, then prevHash.
  if (!line.startsWith(',"hash":"', at) || line.charCodeAt(at + 73) !== QUOTE) return undefined;
  at += 74;
  const policy = optionalMember(line, at, ',"policy":"');
  if (policy === false) return undefined;
  if (policy) {
    if (!POLICY_REF.test(policy.value)) return undefined;
    at = policy.end;
  }
  if (!line.startsWith(',"prevHash":"', at)) return undefined;
  const event: MetricsEvent = { action, at: time, time: ms, details };
  if (change) event.changeId = change.value;
  if (policy) event.policy = policy.value;
  return event;
}
