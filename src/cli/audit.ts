import { stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import type { VerifyOptions, VerifyResult } from '../core/audit/audit';
import { AuditLogError } from '../infra/audit/auditLogError';
import { readCheckpointFile, repairAuditFile, verifyAuditFile } from '../infra/audit/log';

export interface CliOutput {
  log(s: string): void;
  error(s: string): void;
}

const USAGE = `Usage:
  agent-lanes audit verify FILE [--checkpoint CHECKPOINT] [--repo-key KEY] [--json]
      Check the hash chain of an audit log. With --checkpoint (the checkpoint.json
      written by "Export Audit Log"), also detect events removed from the end or a
      rewritten chain; with --repo-key, a log copied from another repository.
  agent-lanes audit repair FILE
      Remove a torn last line (left by a crash) and record the repair in the log.

Exit codes: 0 OK (verify) or repaired/nothing to repair (repair); 1 the log is
broken (the first broken seq and what is wrong are printed); 2 bad usage or an
unreadable file.

Where the extension keeps each repository's log (VS Code; "Code - Insiders" and
VSCodium use their own folder names):
  Linux    ~/.config/Code/User/globalStorage/agent-lanes.agent-lanes/repos/<repo>-<hash>/audit.jsonl
  macOS    ~/Library/Application Support/Code/User/globalStorage/agent-lanes.agent-lanes/repos/<repo>-<hash>/audit.jsonl
  Windows  %APPDATA%\\Code\\User\\globalStorage\\agent-lanes.agent-lanes\\repos\\<repo>-<hash>\\audit.jsonl`;

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

async function checkFile(file: string, out: CliOutput): Promise<boolean> {
  try {
    const info = await stat(file);
    if (info.isDirectory()) {
      out.error(`${file} is a folder; give the audit log file (audit.jsonl).`);
      return false;
    }
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    out.error(`Cannot read the audit log ${file}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}.`);
    return false;
  }
}

function report(result: VerifyResult, out: CliOutput, json: boolean, file: string, withCheckpoint: boolean): number {
  if (json) {
    out.log(JSON.stringify(result));
    return result.ok ? 0 : 1;
  }
  if (result.ok) {
    out.log(`OK: ${result.count} event${result.count === 1 ? '' : 's'}, head hash ${result.headHash}`);
    if (result.repoKey) out.log(`Repository: ${result.repoKey}`);
    if (result.firstAt && result.lastAt) out.log(`From ${result.firstAt} to ${result.lastAt}`);
    // A chain cut at its end is still a whole chain: only a checkpoint remembers how long it was.
    if (!withCheckpoint)
      out.log(
        'Not checked: events removed from the end of the log, which leave the chain whole. Give --checkpoint with the checkpoint.json that "Agent Lanes: Export Audit Log" writes to check that too.',
      );
    return 0;
  }
  if (result.count === 0 && result.lineNumber === 1 && (result.problem === 'notJson' || result.problem === 'invalid')) {
    out.error(
      `${file} is not an Agent Lanes audit log: its first line is not an audit event (${result.problem}). Give the audit.jsonl of a repository (agent-lanes audit --help says where it is).`,
    );
    return 1;
  }
  out.error(`BROKEN at seq ${result.seq} (line ${result.lineNumber}): ${result.problem}`);
  out.error(result.message);
  out.error(
    result.count === 0
      ? 'No event before it verifies.'
      : `The ${result.count} event${result.count === 1 ? '' : 's'} before it verify (head hash ${result.headHash}).`,
  );
  return 1;
}

function parseOptions(args: string[]) {
  return parseArgs({
    args,
    options: { checkpoint: { type: 'string' }, 'repo-key': { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
}

/**
 * `agent-lanes audit ...`. `args` are the words after `agent-lanes` (a
 * leading "audit" is accepted and skipped). Returns the exit code.
 */
export async function runAuditCli(args: string[], out: CliOutput): Promise<number> {
  const words = args[0] === 'audit' ? args.slice(1) : args;
  const [command, ...rest] = words;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    (command === undefined ? out.error : out.log)(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command !== 'verify' && command !== 'repair') {
    out.error(`Unknown audit command "${command}".\n\n${USAGE}`);
    return 2;
  }
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(rest);
  } catch (error) {
    out.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.positionals.length !== 1) {
    out.error(`agent-lanes audit ${command} needs exactly one FILE; got ${parsed.positionals.length}.\n\n${USAGE}`);
    return 2;
  }
  const file = parsed.positionals[0]!;
  if (!(await checkFile(file, out))) return 2;

  if (command === 'repair') {
    if (parsed.values.checkpoint !== undefined || parsed.values['repo-key'] !== undefined) {
      out.error(`agent-lanes audit repair takes only FILE.\n\n${USAGE}`);
      return 2;
    }
    try {
      const result = await repairAuditFile(file, { type: 'user', id: currentUser() });
      out.log(result.message);
    } catch (error) {
      out.error(`Cannot repair ${file}: ${(error as Error).message}`);
      return error instanceof AuditLogError && error.code === 'locked' ? 2 : 1;
    }
    // A repair only cuts a torn tail; whatever else is wrong is reported, not hidden.
    return report(await verifyAuditFile(file), out, parsed.values.json ?? false, file, false);
  }

  const options: VerifyOptions = {};
  if (parsed.values['repo-key'] !== undefined) options.expectedRepoKey = parsed.values['repo-key'];
  if (parsed.values.checkpoint !== undefined) {
    try {
      const checkpoint = await readCheckpointFile(parsed.values.checkpoint);
      options.checkpoint = {
        count: checkpoint.count,
        headHash: checkpoint.headHash,
        exportedAt: checkpoint.exportedAt,
        ...(checkpoint.repoKey === undefined ? {} : { repoKey: checkpoint.repoKey }),
      };
    } catch (error) {
      out.error((error as Error).message);
      return 2;
    }
  }
  try {
    return report(await verifyAuditFile(file, options), out, parsed.values.json ?? false, file, options.checkpoint !== undefined);
  } catch (error) {
    out.error(`Cannot read the audit log ${file}: ${(error as Error).message}`);
    return 2;
  }
}
