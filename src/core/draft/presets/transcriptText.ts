/** Helpers the presets' transcript parsers share. */

/** The caps of AgentTranscript's fields: a tool input, a command, the final message, and the number of items. */
export const MAX_INPUT = 500;
export const MAX_COMMAND = 1000;
export const MAX_FINAL = 20_000;
export const MAX_ITEMS = 500;

export type Json = Record<string, unknown>;

export const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A token count as the CLI reports it; anything else counts as 0. */
export const tokenCount = (value: unknown): number => (typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : 0);

/** Cuts a text to `max` characters, marking the cut. */
export function capText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A tool call's input in one short line: its JSON, long values cut, at most 500 characters. */
export function summarizeInput(input: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(input, (_key, value: unknown) => (typeof value === 'string' ? capText(value, 200) : value)) ?? '';
  } catch {
    text = String(input);
  }
  return capText(text.replace(/\s+/g, ' '), MAX_INPUT);
}

/**
 * The JSON objects of a CLI's output, one per line, that `accept` recognises as the format;
 * every other non-empty line (progress text, warnings, a half-written last line) is counted as unread.
 */
export function jsonLines<T>(output: string, accept: (value: Record<string, unknown>) => boolean): { events: T[]; unread: number } {
  const events: T[] = [];
  let unread = 0;
  for (const line of output.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    let value: unknown;
    try {
      value = trimmed.startsWith('{') ? JSON.parse(trimmed) : undefined;
    } catch {
      value = undefined;
    }
    if (value && typeof value === 'object' && !Array.isArray(value) && accept(value as Record<string, unknown>)) events.push(value as T);
    else unread++;
  }
  return { events, unread };
}
