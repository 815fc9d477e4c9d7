import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** Runs git in a folder with a fixed identity and no user or system config. */
export function runGit(cwd: string, args: string[], input?: string): string {
  return execFileSync('git', args, {
    cwd,
    input,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Test',
      GIT_AUTHOR_EMAIL: 'test@example.invalid',
      GIT_COMMITTER_NAME: 'Test',
      GIT_COMMITTER_EMAIL: 'test@example.invalid',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

const made: string[] = [];

/** A fresh temporary folder (real path), removed by cleanupTemp(). */
export function tempDir(prefix = 'lanes-draft-'): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  made.push(dir);
  return dir;
}

export function cleanupTemp(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function writeFiles(root: string, files: Record<string, string | Buffer>): void {
  for (const [path, contents] of Object.entries(files)) {
    const full = join(root, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, contents);
  }
}

/** A repository on branch main with one commit of the given files; the identity is set in its config. */
export function makeRepo(files: Record<string, string | Buffer> = { 'README.md': '# sample\n' }): string {
  const root = tempDir('lanes-repo-');
  runGit(root, ['init', '-q', '-b', 'main']);
  runGit(root, ['config', 'user.name', 'Test User']);
  runGit(root, ['config', 'user.email', 'test@example.invalid']);
  runGit(root, ['config', 'commit.gpgSign', 'false']);
  writeFiles(root, files);
  runGit(root, ['add', '-A']);
  runGit(root, ['commit', '-q', '-m', 'initial']);
  return root;
}

export function commitAll(root: string, message = 'change'): string {
  runGit(root, ['add', '-A']);
  runGit(root, ['commit', '-q', '--allow-empty', '-m', message]);
  return runGit(root, ['rev-parse', 'HEAD']).trim();
}

export function head(root: string): string {
  return runGit(root, ['rev-parse', 'HEAD']).trim();
}
