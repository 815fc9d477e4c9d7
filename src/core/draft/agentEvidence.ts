import { type ParseError, parse as parseJsonc, printParseErrorCode } from 'jsonc-parser';
import { z } from 'zod';
import { type AgentReport, AgentReportSchema } from '../evidence';

/** Larger evidence files are refused unread. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export const MAX_AGENT_REPORT_BYTES = 1024 * 1024;

export type AgentReportParse =
  /** No file: the agent reported nothing, so those evidence fields stay missing (not an error). */
  | { missing: true }
  | { report: AgentReport }
  /** Invalid: reported to the user; the fields stay missing. */
  | { error: string };

const WHERE = "The agent's report (LANES_EVIDENCE_FILE)";
const FIELDS = Object.keys(AgentReportSchema.shape).join(', ');

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys')
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `"${key}"`).join(', ')} at ${path}; the known fields are ${FIELDS}`;
  return `${path}: ${issue.message}`;
}

/**
 * Validates the text of an agent's evidence file. Error messages name the field
 * path and the position, never the file's contents (the file may not be JSON at all).
 */
export function parseAgentReport(text: string | undefined): AgentReportParse {
  if (text === undefined) return { missing: true };
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_AGENT_REPORT_BYTES)
    return { error: `${WHERE} is ${bytes} bytes, over the limit of ${MAX_AGENT_REPORT_BYTES}; it was not read. Keep the report short.` };
  if (!text.trim()) return { error: `${WHERE} is empty. Write a JSON object such as {"summary": "…"}, or do not create the file.` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const errors: ParseError[] = [];
    parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const first = errors[0];
    const where = first ? `: ${printParseErrorCode(first.error)} at ${lineAndColumn(text, first.offset)}` : '';
    return { error: `${WHERE} is not valid JSON${where}.` };
  }
  const parsed = AgentReportSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues;
    const shown = issues.slice(0, 3).map(describeIssue).join('; ');
    const more = issues.length > 3 ? ` (and ${issues.length - 3} more)` : '';
    return { error: `${WHERE} does not match the expected format: ${shown}${more}.` };
  }
  return { report: parsed.data };
}

/** For callers that read the file size first: refuse without reading. */
export function oversizedReportError(bytes: number): string | undefined {
  return bytes > MAX_AGENT_REPORT_BYTES
    ? `${WHERE} is ${bytes} bytes, over the limit of ${MAX_AGENT_REPORT_BYTES}; it was not read. Keep the report short.`
    : undefined;
}
