import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import type { AuditEvent } from '../../core/audit/audit';
import type { Change } from '../../core/change';
import type { DecisionRecord } from '../../core/decision';
import type { RedactionSummary } from '../../core/evidence';
import type { Logger } from '../../core/logger';
import { FACTS_FOLDER, factsFileOf } from '../../core/policy/replay';
import { BUILTIN_SECRET_PATTERNS, mergeSummaries, redactText, redactValue, type SecretPattern } from '../../core/redaction';
import { git } from '../git/gitProcess';
import type { RepoStorage } from '../storage/repoStorage';
import { withAuditLock } from './lock';
import { checkpointFor, readChangeEvents, type AuditCheckpointFile, type AuditLog } from './log';
import { counted } from '../../core/words';

/** A log larger than this goes into a proof bundle as its last part, with a note. */
const MAX_BUNDLED_LOG_BYTES = 10 * 1024 * 1024;

export interface ProofBundleInput {
  changeId: string;
  /** The change's unified diff. */
  diffText: string;
  evidence: unknown;
  logs: { name: string; text: string }[];
  decisions: DecisionRecord[];
  /** A change in (or through) the Release lane: its production action runs, rollback and revert draft. */
  release?: unknown;
  auditFile: string;
  /** The archive to write (…/something.tar.gz). */
  dest: string;
  log?: AuditLog;
  patterns?: readonly SecretPattern[];
  now?: Date;
}

export interface ProofBundleResult {
  file: string;
  files: string[];
  redaction: RedactionSummary;
  checkpoint: AuditCheckpointFile;
  eventCount: number;
}

function safeLogName(name: string, used: Set<string>): string {
  let base =
    name
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[.-]+/, '')
      .slice(0, 80) || 'log';
  if (!base.endsWith('.log')) base += '.log';
  let candidate = base;
  for (let n = 2; used.has(candidate); n++) candidate = base.replace(/\.log$/, `-${n}.log`);
  used.add(candidate);
  return candidate;
}

function bundleReadme(input: {
  changeId: string;
  createdAt: string;
  files: { name: string; what: string }[];
  redaction: RedactionSummary;
  checkpoint: AuditCheckpointFile;
  eventCount: number;
}): string {
  const kinds = Object.entries(input.redaction.byKind)
    .map(([kind, count]) => `${kind} × ${count}`)
    .join(', ');
  return `# Proof bundle for change ${input.changeId}

Written by Agent Lanes on ${input.createdAt}. Everything here is plain text;
no Agent Lanes or VS Code is needed to read it.

## Files

${input.files.map((file) => `- \`${file.name}\`: ${file.what}`).join('\n')}

## Redaction

Secrets were replaced with \`[REDACTED:kind]\` before anything was written:
${input.redaction.total === 0 ? 'nothing secret-like was found.' : `${counted(input.redaction.total, 'replacement')} (${kinds}).`}
The diff hash in \`evidence.json\` is the hash of the original diff, so it
does not match \`change.diff\` where something was redacted.

## Checking the audit events

Each line of \`audit-events.jsonl\` is one event. Its \`hash\` is the SHA-256
(hex) of the event without its \`hash\` member, serialised as RFC 8785
canonical JSON; \`prevHash\` is the hash of the event before it in the full
repository log (which holds every change's events, so the lines here are not
consecutive). \`checkpoint.json\` records the full log at export time:
${input.checkpoint.count} events, head hash \`${input.checkpoint.headHash}\`${input.checkpoint.verified ? ', verified intact' : `, NOT intact: ${input.checkpoint.problem?.message ?? ''}`}.
With the full log, \`npx agent-lanes audit verify audit.jsonl --checkpoint checkpoint.json\`
checks the whole chain. This change has ${counted(input.eventCount, 'event')}.

Check that no file changed since the export with \`sha256sum -c SHA256SUMS\`.
`;
}

/**
 * Writes one .tar.gz for a change: its diff, evidence, redacted logs, policy
 * decisions, audit events, the log's checkpoint, checksums and a README.
 */
export async function exportProofBundle(input: ProofBundleInput): Promise<ProofBundleResult> {
  await input.log?.flush();
  const patterns = input.patterns ?? BUILTIN_SECRET_PATTERNS;
  const now = input.now ?? new Date();
  const root = `agent-lanes-proof-${input.changeId.replace(/[^A-Za-z0-9._-]+/g, '-')}`;
  const diff = redactText(input.diffText, patterns);
  const evidence = redactValue(input.evidence, patterns);
  const decisions = redactValue(input.decisions, patterns);
  const release = input.release === undefined ? undefined : redactValue(input.release, patterns);
  const used = new Set<string>();
  const logs = input.logs.map((entry) => ({ name: `logs/${safeLogName(entry.name, used)}`, ...redactText(entry.text, patterns) }));
  // Under the lock, so the events and the checkpoint describe the same, complete state of the log.
  const { events, lines, checkpoint } = await withAuditLock(input.auditFile, async () => ({
    ...(await readChangeEvents(input.auditFile, input.changeId, Infinity)),
    checkpoint: (await checkpointFor(input.auditFile, basename(input.auditFile), now, Infinity)).checkpoint,
  }));
  const facts = await readFactsFiles(dirname(input.auditFile), events);
  const redaction = mergeSummaries(
    diff.summary,
    evidence.summary,
    decisions.summary,
    ...(release ? [release.summary] : []),
    ...logs.map((entry) => entry.summary),
  );

  const contents: { name: string; text: string; what: string }[] = [
    { name: 'change.diff', text: diff.text, what: 'the change as a unified diff against its base commit (redacted)' },
    {
      name: 'evidence.json',
      text: JSON.stringify(evidence.value, null, 2) + '\n',
      what: 'the evidence record: agent, prompt reference, base and head, files, tasks and tests, flags (redacted)',
    },
    {
      name: 'decisions.json',
      text: JSON.stringify(decisions.value, null, 2) + '\n',
      what: 'every policy decision for the change: action, effect, matched rules with policy@version, explanation',
    },
    ...(release
      ? [
          {
            name: 'release.json',
            text: JSON.stringify(release.value, null, 2) + '\n',
            what: 'the Release lane: the merged commit, each production action run (who authorized it, for which commit and inputs, its state on GitHub), the rollback and the revert draft',
          },
        ]
      : []),
    ...logs.map((entry) => ({ name: entry.name, text: entry.text, what: 'a task or agent log, redacted' })),
    {
      name: 'audit-events.jsonl',
      text: lines.map((line) => line + '\n').join(''),
      what: "the change's events from the repository's audit log, one JSON event per line, exactly as stored",
    },
    ...facts.map((entry) => ({
      name: `${FACTS_FOLDER}/${entry.name}`,
      text: entry.text,
      what: 'the facts a policy decision evaluated, too large for its event (redacted when recorded; its SHA-256 is the name)',
    })),
    {
      name: 'checkpoint.json',
      text: JSON.stringify(checkpoint, null, 2) + '\n',
      what: "the repository audit log's event count and head hash when this bundle was written",
    },
  ];
  const sums = contents.map((entry) => `${createHash('sha256').update(entry.text, 'utf8').digest('hex')}  ${entry.name}`).join('\n') + '\n';
  const described = [
    { name: 'README.md', what: 'this file' },
    ...contents.map(({ name, what }) => ({ name, what })),
    { name: 'SHA256SUMS', what: 'SHA-256 of every other file, for `sha256sum -c SHA256SUMS`' },
  ];
  const readme = bundleReadme({
    changeId: input.changeId,
    createdAt: now.toISOString(),
    files: described,
    redaction,
    checkpoint,
    eventCount: lines.length,
  });
  const entries = [{ name: 'README.md', text: readme }, ...contents, { name: 'SHA256SUMS', text: sums }];

  await mkdir(dirname(input.dest), { recursive: true });
  const temp = `${input.dest}.${randomBytes(4).toString('hex')}.tmp`;
  const pack = tar.pack();
  const written = pipeline(pack, createGzip(), createWriteStream(temp, { mode: 0o600 }));
  try {
    pack.entry({ name: `${root}/`, type: 'directory', mode: 0o755, mtime: now });
    if (logs.length) pack.entry({ name: `${root}/logs/`, type: 'directory', mode: 0o755, mtime: now });
    if (facts.length) pack.entry({ name: `${root}/${FACTS_FOLDER}/`, type: 'directory', mode: 0o755, mtime: now });
    for (const entry of entries) {
      await new Promise<void>((resolve, reject) =>
        pack.entry({ name: `${root}/${entry.name}`, mode: 0o644, mtime: now }, Buffer.from(entry.text, 'utf8'), (error) =>
          error ? reject(error) : resolve(),
        ),
      );
    }
    pack.finalize();
    await written;
    await rename(temp, input.dest);
  } catch (error) {
    pack.destroy();
    await written.catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  return { file: input.dest, files: entries.map((entry) => `${root}/${entry.name}`), redaction, checkpoint, eventCount: lines.length };
}

/** The facts files beside the log that the change's decisions refer to; a missing one is left out (replay then says so). */
async function readFactsFiles(logDir: string, events: readonly AuditEvent[]): Promise<{ name: string; text: string }[]> {
  const names = [...new Set(events.flatMap((event) => factsFileOf(event) ?? []))];
  const read = await Promise.all(
    names.map(async (name) => ({ name, text: await readFile(join(logDir, FACTS_FOLDER, name), 'utf8').catch(() => undefined) })),
  );
  return read.flatMap((entry) => (entry.text === undefined ? [] : [{ name: entry.name, text: entry.text }]));
}

/** The change as a unified diff from its base to its head commit, for its proof bundle. */
export async function readChangeDiff(repoRoot: string, change: Pick<Change, 'baseSha' | 'headSha'>): Promise<string> {
  if (!change.headSha || change.headSha === change.baseSha) return '';
  try {
    const result = await git(repoRoot, ['diff', '--no-color', '--no-ext-diff', '--no-textconv', change.baseSha, change.headSha, '--']);
    return result.stdout;
  } catch (error) {
    // A pruned lane branch can take its commits with it: say so in place of the diff.
    return `# The diff of ${change.baseSha.slice(0, 12)}..${change.headSha.slice(0, 12)} is not available: ${(error as Error).message.split('\n')[0]}\n`;
  }
}

/**
 * The change's logs from the repository's storage: the agent log in the
 * change's folder, the sandbox logs its evidence names, and the change's log
 * folder. Only files inside the repository's storage are read.
 */
export async function readChangeLogs(
  storage: Pick<RepoStorage, 'root' | 'logsDir' | 'changeDir'>,
  changeId: string,
  evidence: { preparation?: { logFile?: string }; tasks?: readonly { logFile?: string }[] } | undefined,
  logger: Logger,
): Promise<{ name: string; text: string }[]> {
  const inside = (file: string) => {
    const rel = relative(storage.root, file);
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
  };
  const files = new Set<string>();
  const listLogs = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isFile() && entry.name.endsWith('.log')) files.add(join(dir, entry.name));
    }
  };
  await listLogs(storage.changeDir(changeId));
  for (const file of [evidence?.preparation?.logFile, ...(evidence?.tasks ?? []).map((task) => task.logFile)])
    if (file) files.add(resolve(file));
  await listLogs(join(storage.logsDir, changeId));
  const logs: { name: string; text: string }[] = [];
  for (const file of [...files].sort()) {
    if (!inside(file)) {
      logger.warn(`Proof bundle of ${changeId}: skipped ${file}, which is outside the repository's storage.`);
      continue;
    }
    const text = await readCapped(file).catch((error: unknown) => {
      logger.warn(`Proof bundle of ${changeId}: could not read ${file}: ${(error as Error).message}`);
      return undefined;
    });
    if (text !== undefined) logs.push({ name: basename(file), text });
  }
  return logs;
}

async function readCapped(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size <= MAX_BUNDLED_LOG_BYTES) return (await handle.readFile()).toString('utf8');
    const buffer = Buffer.alloc(MAX_BUNDLED_LOG_BYTES);
    await handle.read(buffer, 0, buffer.length, size - buffer.length);
    return `[agent-lanes: the log has ${size} bytes; only its last ${MAX_BUNDLED_LOG_BYTES} are in this bundle]\n${buffer.toString('utf8')}`;
  } finally {
    await handle.close();
  }
}
