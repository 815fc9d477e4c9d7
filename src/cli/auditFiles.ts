import { stat } from 'node:fs/promises';

/** Why an audit log named on the command line cannot be read (a folder, missing, unreadable), or undefined. */
export async function auditFileProblem(file: string): Promise<string | undefined> {
  try {
    if ((await stat(file)).isDirectory()) return `${file} is a folder; give the audit log file (audit.jsonl).`;
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return `Cannot read the audit log ${file}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}.`;
  }
}
