import { lstat, readFile, writeFile } from 'node:fs/promises';
import type { AgentReportParse } from '../../core/draft/agentEvidence';
import { type SecretPattern, redactText, redactValue } from '../../core/redaction';

/**
 * Redacts what an agent reported (LANES_EVIDENCE_FILE) before it is stored or
 * shown: the parsed report, or the error that quotes it. When the report held
 * a secret, its file in the change folder is rewritten redacted, so no raw copy
 * stays behind.
 */
export async function redactAgentReport(
  parse: AgentReportParse | undefined,
  file: string,
  patterns: readonly SecretPattern[],
): Promise<AgentReportParse | undefined> {
  if (!parse) return parse;
  if ('error' in parse) {
    // The report could not be read as one; its file may still hold a secret.
    const raw = await readFile(file, 'utf8').catch(() => undefined);
    const info = await lstat(file).catch(() => undefined);
    if (raw !== undefined && info?.isFile()) {
      const redacted = redactText(raw, patterns);
      if (redacted.summary.total > 0) await writeFile(file, redacted.text, 'utf8');
    }
    return { ...parse, error: redactText(parse.error, patterns).text };
  }
  if (!('report' in parse)) return parse;
  const { value, summary } = redactValue(parse.report, patterns);
  if (summary.total > 0) {
    const info = await lstat(file).catch(() => undefined);
    if (info?.isFile()) await writeFile(file, `${JSON.stringify(value, null, 2)}\n`, 'utf8');
  }
  return { ...parse, report: value };
}
