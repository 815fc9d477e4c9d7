import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { addedDependencies } from '../../src/core/draft/dependencyManifests';
import {
  type DiffAnalysis,
  type DiffAnalysisInput,
  analyzeDiff,
  checkoutTouchedFlag,
  diffHash,
  parseAddedLines,
  parseRawNumstat,
  symlinkEscapes,
} from '../../src/core/draft/diffAnalysis';
import type { FlagKind } from '../../src/core/evidence';
import { analyzeChange } from '../../src/infra/git/gitDiff';
import { cleanupTemp, commitAll, head, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

const Z = '0'.repeat(40);
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

interface Lane {
  repo: string;
  worktree: string;
  base: string;
  head: string;
}

/** A repository with `baseFiles`, and a lane worktree (outside it) where `edit` runs before the lane commit. */
function lane(baseFiles: Record<string, string | Buffer>, edit: (worktree: string) => void): Lane {
  const repo = makeRepo(baseFiles);
  const base = head(repo);
  const worktree = join(tempDir('lanes-storage-'), 'wt');
  runGit(repo, ['worktree', 'add', '-q', '-b', 'lanes/a1b2c3d4-test', worktree, base]);
  edit(worktree);
  return { repo, worktree, base, head: commitAll(worktree, 'lane') };
}

async function analyse(l: Lane, options: Partial<Parameters<typeof analyzeChange>[0]> = {}): Promise<DiffAnalysis> {
  return analyzeChange({ repoRoot: l.repo, baseSha: l.base, headSha: l.head, worktreePath: l.worktree, ...options });
}

function kinds(analysis: DiffAnalysis, kind: FlagKind): string[] {
  return analysis.flags.filter((flag) => flag.kind === kind).map((flag) => flag.path ?? '');
}

/** Builds a commit whose tree holds exactly `files`, any names allowed (git's own commands refuse some). */
function craftedCommit(repo: string, parent: string, files: Record<string, string>): string {
  type Tree = Map<string, Tree | string>;
  const root: Tree = new Map();
  for (const [path, contents] of Object.entries(files)) {
    const parts = path.split('/');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      if (!node.has(part)) node.set(part, new Map());
      node = node.get(part) as Tree;
    }
    node.set(parts[parts.length - 1]!, contents);
  }
  const write = (tree: Tree): string => {
    const lines = [...tree].map(([name, value]) =>
      typeof value === 'string'
        ? `100644 blob ${runGit(repo, ['hash-object', '-w', '--stdin'], value).trim()}\t${name}`
        : `040000 tree ${write(value)}\t${name}`,
    );
    return runGit(repo, ['mktree'], `${lines.join('\n')}\n`).trim();
  };
  return runGit(repo, ['commit-tree', write(root), '-p', parent, '-m', 'crafted']).trim();
}

function input(overrides: Partial<DiffAnalysisInput>): DiffAnalysisInput {
  return {
    raw: [],
    numstat: [],
    blobSizes: new Map(),
    symlinkTargets: new Map(),
    addedLines: new Map(),
    manifests: new Map(),
    ...overrides,
  };
}

describe('diff analysis', function () {
  this.timeout(30_000);
  afterEach(cleanupTemp);

  describe('parsers (crafted git output)', () => {
    it('parses raw and numstat records, renames and binaries included', () => {
      const output = [
        `:100644 100755 ${A} ${B} M`,
        'a b.txt',
        `:000000 100644 ${Z} ${B} A`,
        'bin.dat',
        `:100644 100644 ${A} ${A} R100`,
        'old.txt',
        'new.txt',
        `:000000 160000 ${Z} ${B} A`,
        'vendor/lib',
        '1\t0\ta b.txt',
        '-\t-\tbin.dat',
        '0\t0\t',
        'old.txt',
        'new.txt',
        '1\t0\tvendor/lib',
        '',
      ].join('\0');
      const { raw, numstat } = parseRawNumstat(output);
      assert.deepEqual(
        raw.map((entry) => [entry.status, entry.path, entry.oldPath, entry.score]),
        [
          ['M', 'a b.txt', undefined, undefined],
          ['A', 'bin.dat', undefined, undefined],
          ['R', 'new.txt', 'old.txt', 100],
          ['A', 'vendor/lib', undefined, undefined],
        ],
      );
      assert.deepEqual(numstat[1], { path: 'bin.dat', additions: null, deletions: null });
      assert.deepEqual(numstat[2], { path: 'new.txt', oldPath: 'old.txt', additions: 0, deletions: 0 });
    });

    it('refuses output it does not understand, saying what it expected', () => {
      assert.throws(() => parseRawNumstat(`:100644 100644 ${A} ${B} R90\0only-one-path`), /ended early \(expected the destination path\)/);
      assert.throws(() => parseRawNumstat('garbage\0'), /Unexpected numstat record/);
    });

    it('collects added lines per new path with their line numbers, quoted paths included', () => {
      const patch = [
        'diff --git a/src/a.ts b/src/a.ts',
        'index 1..2 100644',
        '--- a/src/a.ts',
        '+++ b/src/a.ts',
        '@@ -2,0 +3,2 @@ function x() {',
        '+const one = 1;',
        '++++ looks like a header but is an added line',
        '@@ -10 +12 @@',
        '-old',
        '+new',
        'diff --git "a/tab\\there" "b/tab\\there"',
        'new file mode 100644',
        '--- /dev/null',
        '+++ "b/tab\\there"',
        '@@ -0,0 +1 @@',
        '+quoted',
        '\\ No newline at end of file',
        'diff --git a/gone.txt b/gone.txt',
        'deleted file mode 100644',
        '--- a/gone.txt',
        '+++ /dev/null',
        '@@ -1 +0,0 @@',
        '-removed',
        'diff --git a/bin.dat b/bin.dat',
        'Binary files /dev/null and b/bin.dat differ',
        '',
      ].join('\n');
      const added = parseAddedLines(patch);
      assert.deepEqual(added.get('src/a.ts'), [
        { line: 3, text: 'const one = 1;' },
        { line: 4, text: '+++ looks like a header but is an added line' },
        { line: 12, text: 'new' },
      ]);
      assert.deepEqual(added.get('tab\there'), [{ line: 1, text: 'quoted' }]);
      assert.equal(added.has('gone.txt'), false);
      assert.equal(added.has('bin.dat'), false);
    });
  });

  describe('core flags on crafted entries', () => {
    it('flags ".." components and absolute paths as pathTraversal', () => {
      const analysis = analyzeDiff(
        input({
          raw: [
            { status: 'A', oldMode: '000000', newMode: '100644', oldSha: Z, newSha: A, path: '../outside.txt' },
            { status: 'A', oldMode: '000000', newMode: '100644', oldSha: Z, newSha: A, path: 'src/../../x' },
            { status: 'A', oldMode: '000000', newMode: '100644', oldSha: Z, newSha: A, path: '/etc/cron.d/x' },
            { status: 'R', oldMode: '100644', newMode: '100644', oldSha: A, newSha: A, path: 'ok.txt', oldPath: '..\\win' },
            { status: 'A', oldMode: '000000', newMode: '100644', oldSha: Z, newSha: A, path: 'fine/..x/y' },
          ],
        }),
      );
      assert.deepEqual(kinds(analysis, 'pathTraversal'), ['../outside.txt', 'src/../../x', '/etc/cron.d/x', 'ok.txt']);
    });

    it('flags a .git component in any spelling as gitPath', () => {
      const paths = ['sub/.git/config', '.GIT/hooks/pre-commit', 'a/.git./x', 'GIT~1/config', 'not.git/x', '.gitignore', 'x/.github/y'];
      const analysis = analyzeDiff(
        input({ raw: paths.map((path) => ({ status: 'A', oldMode: '000000', newMode: '100644', oldSha: Z, newSha: A, path })) }),
      );
      assert.deepEqual(kinds(analysis, 'gitPath'), ['sub/.git/config', '.GIT/hooks/pre-commit', 'a/.git./x', 'GIT~1/config']);
    });

    it('decides lexically whether a symlink leaves the worktree', () => {
      assert.equal(symlinkEscapes('a/link', '../b'), false);
      assert.equal(symlinkEscapes('a/link', '../../b'), true);
      assert.equal(symlinkEscapes('link', '/etc/passwd'), true);
      assert.equal(symlinkEscapes('link', 'C:\\Windows'), true);
      assert.equal(symlinkEscapes('a/b/link', './../../c/../d'), false);
      assert.equal(symlinkEscapes('a/link', 'x/../../../y'), true);
    });

    it('caps flags of one kind with a summary flag', () => {
      const raw = Array.from({ length: 7 }, (_, i) => ({
        status: 'A',
        oldMode: '000000',
        newMode: '100644',
        oldSha: Z,
        newSha: A,
        path: `.github/workflows/w${i}.yml`,
      }));
      const analysis = analyzeDiff(input({ raw }), { maxFlagsPerKind: 5 });
      const sensitive = analysis.flags.filter((flag) => flag.kind === 'sensitivePath');
      assert.equal(sensitive.length, 6);
      assert.equal(sensitive[5]!.detail, '…and 2 more of this kind.');
    });

    it('refuses a status it cannot place, saying so', () => {
      assert.throws(
        () => analyzeDiff(input({ raw: [{ status: 'U', oldMode: '100644', newMode: '100644', oldSha: A, newSha: B, path: 'x' }] })),
        /Unexpected diff status "U"/,
      );
    });

    it('hashes the two trees, not how renames were detected', () => {
      const renamed = [
        { status: 'R', score: 100, oldMode: '100644', newMode: '100644', oldSha: A, newSha: A, path: 'new.txt', oldPath: 'old.txt' },
      ];
      const split = [
        { status: 'D', oldMode: '100644', newMode: '000000', oldSha: A, newSha: Z, path: 'old.txt' },
        { status: 'A', oldMode: '000000', newMode: '100644', oldSha: Z, newSha: A, path: 'new.txt' },
      ];
      assert.equal(diffHash(renamed), diffHash(split));
      assert.equal(diffHash(split), diffHash([...split].reverse()));
      assert.notEqual(diffHash(split), diffHash([{ ...split[0]! }, { ...split[1]!, newSha: B }]));
      assert.notEqual(diffHash(split), diffHash([{ ...split[0]! }, { ...split[1]!, newMode: '100755' }]));
      assert.match(diffHash(split), /^[0-9a-f]{64}$/);
    });

    it('makes the checkoutTouched flag', () => {
      const flag = checkoutTouchedFlag(['a.txt was changed', 'HEAD moved from x to y']);
      assert.equal(flag.kind, 'checkoutTouched');
      assert.match(flag.detail, /Your own checkout changed while the agent ran: a\.txt was changed; HEAD moved/);
    });
  });

  describe('dependency manifests', () => {
    it('package.json: added dependency keys only, not version bumps or other edits', () => {
      const before = JSON.stringify({ name: 'x', scripts: { test: 'mocha' }, dependencies: { a: '^1.0.0' } });
      assert.deepEqual(
        addedDependencies(
          'package.json',
          before,
          JSON.stringify({ name: 'x', scripts: { test: 'node --test' }, dependencies: { a: '^2.0.0' } }),
        ).added,
        [],
      );
      assert.deepEqual(
        addedDependencies('web/package.json', before, JSON.stringify({ dependencies: { a: '1', b: '1' }, devDependencies: { c: '1' } }))
          .added,
        ['b', 'c'],
      );
      assert.deepEqual(addedDependencies('package.json', undefined, JSON.stringify({ dependencies: { a: '1' } })).added, ['a']);
      assert.match(addedDependencies('package.json', before, '{ not json').unreadable!, /not valid JSON/);
    });

    it('reads requirements, pyproject, go.mod, Cargo.toml, pom.xml and build.gradle', () => {
      assert.deepEqual(
        addedDependencies('requirements-dev.txt', 'flask==2.0\n# c\n', 'Flask==3.0\nrequests>=2 ; python_version > "3"\n-r base.txt\n')
          .added,
        ['requests'],
      );
      assert.deepEqual(
        addedDependencies(
          'pyproject.toml',
          '[project]\ndependencies = [\n  "httpx>=0.27",\n]\n',
          '[project]\ndependencies = [\n  "httpx>=0.28",\n  "rich",\n]\n[tool.poetry.group.dev.dependencies]\npytest = "^8"\n',
        ).added,
        ['pytest', 'rich'],
      );
      assert.deepEqual(
        addedDependencies(
          'go.mod',
          'module m\nrequire (\n\tgithub.com/a/b v1.0.0\n)\n',
          'module m\nrequire (\n\tgithub.com/a/b v1.1.0\n\tgithub.com/c/d v0.1.0 // indirect\n)\nrequire golang.org/x/e v0.2.0\n',
        ).added,
        ['github.com/c/d', 'golang.org/x/e'],
      );
      assert.deepEqual(
        addedDependencies(
          'Cargo.toml',
          '[dependencies]\nserde = "1"\n',
          '[dependencies]\nserde = "1.1"\ntokio = { version = "1" }\n[dev-dependencies.proptest]\nversion = "1"\n',
        ).added,
        ['proptest', 'tokio'],
      );
      assert.deepEqual(
        addedDependencies(
          'pom.xml',
          '<dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId></dependency></dependencies>',
          '<dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId><version>2</version></dependency><dependency><groupId>h</groupId><artifactId>b</artifactId></dependency></dependencies>',
        ).added,
        ['h:b'],
      );
      assert.deepEqual(
        addedDependencies(
          'app/build.gradle.kts',
          'dependencies {\n  implementation("g:a:1")\n}\n',
          'dependencies {\n  implementation("g:a:2")\n  testImplementation(libs.junit)\n  api \'h:b:1\'\n}\n',
        ).added,
        ['h:b', 'libs.junit'],
      );
    });
  });

  describe('real repositories', () => {
    it('lists files with status, counts, renames, deletions, mode changes and totals', async () => {
      const body = Array.from({ length: 20 }, (_, i) => `line ${i}`).join('\n') + '\n';
      const l = lane({ 'keep.txt': 'a\nb\n', 'gone.txt': 'bye\n', 'old/name.txt': body, 'run.sh': 'echo\n' }, (wt) => {
        writeFiles(wt, { 'keep.txt': 'a\nB\nc\n', 'added.txt': 'new\n' });
        rmSync(join(wt, 'gone.txt'));
        mkdirSync(join(wt, 'new'));
        runGit(wt, ['mv', 'old/name.txt', 'new/name.txt']);
        writeFiles(wt, { 'new/name.txt': body.replace('line 3', 'line three') });
        chmodSync(join(wt, 'run.sh'), 0o755);
      });
      const analysis = await analyse(l);
      const byPath = new Map(analysis.files.map((file) => [file.path, file]));
      assert.deepEqual(byPath.get('keep.txt'), {
        path: 'keep.txt',
        status: 'modified',
        additions: 2,
        deletions: 1,
        binary: false,
        mode: { old: '100644', new: '100644' },
        sizeBytes: 6,
      });
      assert.equal(byPath.get('added.txt')!.status, 'added');
      assert.deepEqual(byPath.get('added.txt')!.mode, { new: '100644' });
      assert.equal(byPath.get('gone.txt')!.status, 'deleted');
      assert.equal(byPath.get('gone.txt')!.sizeBytes, undefined);
      assert.deepEqual(
        [byPath.get('new/name.txt')!.status, byPath.get('new/name.txt')!.oldPath, byPath.get('new/name.txt')!.additions],
        ['renamed', 'old/name.txt', 1],
      );
      assert.deepEqual(byPath.get('run.sh')!.mode, { old: '100644', new: '100755' });
      assert.deepEqual(analysis.totals, { files: 5, additions: 4, deletions: 3 });
      assert.deepEqual(
        analysis.flags.map((flag) => `${flag.kind} ${flag.path}`),
        ['executesLater run.sh'],
        'only the executable bit is flagged',
      );
    });

    it('gives the same diff hash for the same trees and a different one when a byte changes', async () => {
      const one = lane({ 'a.txt': 'a\n' }, (wt) => writeFiles(wt, { 'a.txt': 'b\n', 'c.txt': 'c\n' }));
      const again = await analyse(one);
      const recommitted = craftedCommit(one.repo, one.base, { 'a.txt': 'b\n', 'c.txt': 'c\n' });
      assert.equal(
        (await analyzeChange({ repoRoot: one.repo, baseSha: one.base, headSha: recommitted })).hash,
        again.hash,
        'another commit of the same tree',
      );
      const differs = craftedCommit(one.repo, one.base, { 'a.txt': 'b\n', 'c.txt': 'C\n' });
      assert.notEqual((await analyzeChange({ repoRoot: one.repo, baseSha: one.base, headSha: differs })).hash, again.hash);
    });

    it('flags a symlink that escapes (relative and absolute), and not one that stays inside', async () => {
      const l = lane({ 'docs/x.md': 'x\n' }, (wt) => {
        symlinkSync('../../../etc/passwd', join(wt, 'docs/escape'));
        symlinkSync('/etc/shadow', join(wt, 'abs'));
        symlinkSync('x.md', join(wt, 'docs/inside'));
      });
      const analysis = await analyse(l);
      const link = analysis.files.find((file) => file.path === 'docs/escape')!;
      assert.deepEqual(link.symlink, { target: '../../../etc/passwd', escapesWorktree: true });
      assert.deepEqual(analysis.files.find((file) => file.path === 'docs/inside')!.symlink, { target: 'x.md', escapesWorktree: false });
      assert.deepEqual(kinds(analysis, 'symlinkEscape').sort(), ['abs', 'docs/escape']);
    });

    it('flags a symlink that escapes on disk through a link that was already there', async () => {
      const outside = tempDir('lanes-outside-');
      const repo = makeRepo({ 'README.md': 'x\n' });
      symlinkSync(outside, join(repo, 'data'));
      const base = commitAll(repo, 'a link out, committed long ago');
      const worktree = join(tempDir('lanes-storage-'), 'wt');
      runGit(repo, ['worktree', 'add', '-q', '-b', 'lanes/a1b2c3d4-t', worktree, base]);
      symlinkSync('data/secrets.txt', join(worktree, 'innocent'));
      const l = { repo, worktree, base, head: commitAll(worktree) };
      assert.equal(symlinkEscapes('innocent', 'data/secrets.txt'), false, 'lexically it stays inside');
      assert.deepEqual(kinds(await analyse(l), 'symlinkEscape'), ['innocent']);
    });

    it('flags a gitlink (an embedded repository) and .gitmodules', async () => {
      const l = lane({ 'README.md': 'x\n' }, (wt) => {
        const nested = join(wt, 'vendor/lib');
        mkdirSync(nested, { recursive: true });
        runGit(nested, ['init', '-q']);
        writeFiles(nested, { 'f.txt': 'f\n' });
        commitAll(nested);
        writeFiles(wt, { '.gitmodules': '[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = https://example.invalid/lib.git\n' });
      });
      const analysis = await analyse(l);
      const gitlink = analysis.files.find((file) => file.path === 'vendor/lib')!;
      assert.equal(gitlink.gitlink, true);
      assert.equal(gitlink.mode?.new, '160000');
      assert.deepEqual(kinds(analysis, 'gitlink').sort(), ['.gitmodules', 'vendor/lib']);
      assert.match(analysis.flags.find((flag) => flag.path === 'vendor/lib')!.detail, /adds a submodule \(gitlink\) at [0-9a-f]{12}/);
    });

    it('flags a .git path component and a ".." path in crafted trees git itself would refuse', async () => {
      const repo = makeRepo();
      const base = head(repo);
      const crafted = craftedCommit(repo, base, {
        'README.md': '# sample\n',
        'sub/.git/config': '[core]\n\thooksPath = /tmp/evil\n',
        '../escape.txt': 'x\n',
      });
      const analysis = await analyzeChange({ repoRoot: repo, baseSha: base, headSha: crafted });
      assert.deepEqual(kinds(analysis, 'gitPath'), ['sub/.git/config']);
      assert.deepEqual(kinds(analysis, 'pathTraversal'), ['../escape.txt']);
    });

    it('flags binary and oversized files', async () => {
      const l = lane({ 'README.md': 'x\n' }, (wt) =>
        writeFiles(wt, { 'image.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 1, 2]), 'big.txt': 'y'.repeat(3000) + '\n' }),
      );
      const analysis = await analyse(l, { maxFileBytes: 2048 });
      const png = analysis.files.find((file) => file.path === 'image.png')!;
      assert.equal(png.binary, true);
      assert.equal(png.sizeBytes, 8);
      assert.deepEqual(kinds(analysis, 'binaryFile'), ['image.png']);
      assert.deepEqual(kinds(analysis, 'oversizedFile'), ['big.txt']);
      assert.match(analysis.flags.find((flag) => flag.kind === 'oversizedFile')!.detail, /3001 bytes, over the limit of 2048/);
    });

    it('flags ten kinds of secret-like tokens in added lines, never quoting them', async () => {
      const secrets: Record<string, string> = {
        awsAccessKeyId: 'aws_key = "AKIAZ3MXQ7PLR4TW2KDN"',
        githubToken: 'token: ghp_' + 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5',
        githubFineGrainedToken: 'pat = github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF',
        slackToken: 'SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
        stripeKey: 'stripe = "sk_live_' + '4eC39HqLyjWDarjtT1zdp7dc"',
        gcpApiKey: 'key: AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
        npmToken: '//registry.npmjs.org/:_authToken=npm_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8',
        jwt: 'auth = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"',
        anthropicKey: 'ANTHROPIC_API_KEY=sk-ant-api03-' + 'Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0Ed',
        privateKeyBlock: '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq3xZ9v\n-----END RSA PRIVATE KEY-----',
      };
      const files = Object.fromEntries(Object.entries(secrets).map(([kind, line]) => [`config/${kind}.txt`, `harmless\n${line}\n`]));
      const l = lane({ 'README.md': 'x\n', 'config/old.txt': `existing ${secrets.awsAccessKeyId}\n` }, (wt) =>
        writeFiles(wt, { ...files, 'config/old.txt': `existing ${secrets.awsAccessKeyId}\nmore\n` }),
      );
      const analysis = await analyse(l);
      const flagged = analysis.flags.filter((flag) => flag.kind === 'secretLike');
      assert.deepEqual(
        flagged.map((flag) => flag.path).sort(),
        Object.keys(secrets)
          .map((kind) => `config/${kind}.txt`)
          .sort(),
        'one flag per file with a new secret; the old line is not flagged',
      );
      for (const flag of flagged) {
        const kind = flag.path!.slice('config/'.length, -'.txt'.length);
        assert.match(flag.detail, new RegExp(`\\(${kind}\\) in added line 2`), flag.detail);
        for (const value of Object.values(secrets))
          assert.equal(flag.detail.includes(value.slice(-12)), false, 'the secret is never quoted');
      }
    });

    it('does not let a .gitattributes in the lane hide a secret from the scan', async () => {
      const l = lane({ 'README.md': 'x\n' }, (wt) =>
        writeFiles(wt, { '.gitattributes': '*.txt -diff\n', 'notes.txt': 'key AKIAZ3MXQ7PLR4TW2KDN\n' }),
      );
      assert.deepEqual(kinds(await analyse(l), 'secretLike'), ['notes.txt']);
    });

    it('flags new dependencies: added keys in package.json, lock files, other manifests; not a version bump', async () => {
      const pkg = (deps: Record<string, string>) => `${JSON.stringify({ name: 'x', dependencies: deps }, null, 2)}\n`;
      const l = lane(
        { 'package.json': pkg({ a: '^1.0.0' }), 'web/package.json': pkg({ b: '1' }), 'requirements.txt': 'flask==2\n' },
        (wt) =>
          writeFiles(wt, {
            'package.json': pkg({ a: '^1.0.0', 'left-pad': '^1.3.0' }),
            'web/package.json': pkg({ b: '2' }),
            'package-lock.json': '{}\n',
            'requirements.txt': 'flask==2\nrequests\n',
            'go.mod': 'module m\nrequire github.com/x/y v1.0.0\n',
          }),
      );
      const analysis = await analyse(l);
      const details = Object.fromEntries(
        analysis.flags.filter((flag) => flag.kind === 'newDependency').map((flag) => [flag.path, flag.detail]),
      );
      assert.deepEqual(Object.keys(details).sort(), ['go.mod', 'package-lock.json', 'package.json', 'requirements.txt']);
      assert.match(details['package.json']!, /adds a dependency: left-pad/);
      assert.match(details['package-lock.json']!, /lock file is added/);
      assert.match(details['requirements.txt']!, /requests/);
      assert.match(details['go.mod']!, /github\.com\/x\/y/);
    });

    it('flags sensitive paths (defaults and policy globs), sandbox config, policy file and agent instructions', async () => {
      const l = lane({ 'README.md': 'x\n' }, (wt) =>
        writeFiles(wt, {
          'src/auth/login.ts': 'x\n',
          'lib/crypto.js': 'x\n',
          '.github/workflows/ci.yml': 'x\n',
          '.env.production': 'x\n',
          'src/author.ts': 'x\n',
          '.devcontainer/devcontainer.json': '{}\n',
          '.lanes/policy.yaml': 'x: 1\n',
          'AGENTS.md': 'be bold\n',
          'pkg/CLAUDE.md': 'x\n',
        }),
      );
      const analysis = await analyse(l);
      assert.deepEqual(kinds(analysis, 'sensitivePath').sort(), [
        '.env.production',
        '.github/workflows/ci.yml',
        'lib/crypto.js',
        'src/auth/login.ts',
      ]);
      assert.deepEqual(kinds(analysis, 'sandboxConfigEdited'), ['.devcontainer/devcontainer.json']);
      assert.deepEqual(kinds(analysis, 'policyFileEdited'), ['.lanes/policy.yaml']);
      assert.deepEqual(kinds(analysis, 'agentInstructionsEdited').sort(), ['AGENTS.md', 'pkg/CLAUDE.md']);
      const custom = await analyse(l, { sensitivePaths: ['src/author.ts'] });
      assert.deepEqual(kinds(custom, 'sensitivePath').sort(), [
        '.env.production',
        '.github/workflows/ci.yml',
        'lib/crypto.js',
        'src/auth/login.ts',
        'src/author.ts',
      ]);
    });

    it("adds policy's sensitive paths to the defaults, never replacing them (a repository's docs/**, the built-in policy's four)", async () => {
      const l = lane({ 'README.md': 'x\n' }, (wt) =>
        writeFiles(wt, {
          CODEOWNERS: '* @sec\n',
          'auth/session.go': 'x\n',
          '.env.production': 'x\n',
          Jenkinsfile: 'x\n',
          'deploy/server.key': 'x\n',
          '.github/workflows/ci.yml': 'x\n',
          'docs/guide.md': 'x\n',
        }),
      );
      const repository = await analyse(l, { sensitivePaths: ['docs/**'] });
      assert.deepEqual(kinds(repository, 'sensitivePath').sort(), [
        '.env.production',
        '.github/workflows/ci.yml',
        'CODEOWNERS',
        'Jenkinsfile',
        'auth/session.go',
        'deploy/server.key',
        'docs/guide.md',
      ]);
      const builtin = await analyse(l, { sensitivePaths: ['**/auth/**', '**/security/**', '**/crypto/**', '**/permissions/**'] });
      assert.ok(
        kinds(builtin, 'sensitivePath').includes('.github/workflows/ci.yml'),
        'a CI workflow edit is sensitive under the built-in policy',
      );
      assert.equal(kinds(builtin, 'sensitivePath').length, 6);
    });

    it('flags files that run code later: editor and agent tool configuration, hooks, .gitattributes, package scripts and bin, an executable bit', async () => {
      const pkg = (extra: Record<string, unknown>) => `${JSON.stringify({ name: 'x', version: '1.0.0', ...extra }, null, 2)}\n`;
      const l = lane(
        {
          'package.json': pkg({ scripts: { test: 'mocha' } }),
          'web/package.json': pkg({ scripts: { build: 'vite' } }),
          'tools/package.json': pkg({ directories: { bin: 'bin' } }),
          'lib/package.json': pkg({}),
          'run.sh': 'echo hi\n',
          'notes.txt': 'x\n',
        },
        (wt) => {
          writeFiles(wt, {
            '.vscode/tasks.json': '{}\n',
            '.vscode/launch.json': '{}\n',
            '.vscode/settings.json': '{}\n',
            '.vscode/extensions.json': '{}\n',
            '.claude/settings.json': '{}\n',
            '.mcp.json': '{}\n',
            '.cursor/mcp.json': '{}\n',
            '.husky/pre-commit': 'npm test\n',
            '.gitattributes': '*.txt filter=lfs\n',
            'package.json': pkg({ scripts: { test: 'mocha', postinstall: 'node x.js' } }),
            'web/package.json': pkg({ version: '2.0.0', scripts: { build: 'vite' } }),
            'tools/package.json': pkg({ directories: { bin: 'scripts' } }),
            'lib/package.json': pkg({ bin: { lib: 'cli.js' } }),
            'notes.txt': 'y\n',
          });
          chmodSync(join(wt, 'run.sh'), 0o755);
        },
      );
      const analysis = await analyse(l);
      const details = Object.fromEntries(
        analysis.flags.filter((flag) => flag.kind === 'executesLater').map((flag) => [flag.path, flag.detail]),
      );
      assert.deepEqual(Object.keys(details).sort(), [
        '.claude/settings.json',
        '.cursor/mcp.json',
        '.gitattributes',
        '.husky/pre-commit',
        '.mcp.json',
        '.vscode/launch.json',
        '.vscode/settings.json',
        '.vscode/tasks.json',
        'lib/package.json',
        'package.json',
        'run.sh',
        'tools/package.json',
      ]);
      assert.match(details['package.json']!, /changes "scripts": commands that npm, pnpm or yarn run later/);
      assert.match(details['lib/package.json']!, /changes "bin"/);
      assert.match(details['tools/package.json']!, /changes "directories\.bin"/);
      assert.match(details['run.sh']!, /is made executable \(mode 100644 → 100755\)/);
    });

    it('flags an unusually wide change', async () => {
      const l = lane({ 'README.md': 'x\n' }, (wt) =>
        writeFiles(wt, Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`top${i % 4}/f${i}.txt`, 'x\n']))),
      );
      const analysis = await analyse(l, { scope: { maxFiles: 5, maxTopLevelDirs: 3, maxChangedLines: 7 } });
      const [flag] = analysis.flags.filter((f) => f.kind === 'unusualScope');
      assert.match(flag!.detail, /8 files \(more than 5\), 4 top-level folders \(more than 3\), 8 changed lines \(more than 7\)/);
      assert.deepEqual(kinds(await analyse(l), 'unusualScope'), [], 'within the default limits');
    });

    it('reads the patch as a stream with the same result as the whole text: lines split at "\\n" only, characters split across chunks, a type change', async () => {
      const token = 'ghp_' + 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5';
      // 200 KiB of added lines with two-byte characters, so git's output reaches the reader in several chunks
      // cut inside a character; the secret sits on line 3001, after a line that holds a carriage return.
      const big = Array.from({ length: 3000 }, (_, i) => `zeile ${i} äöü ${'é'.repeat(30)}${i === 1500 ? '\rnot a new line' : ''}`);
      const l = lane({ 'README.md': 'x\n', 'kind.txt': 'a file that becomes a link\n' }, (wt) => {
        writeFiles(wt, { 'big.txt': `${big.join('\n')}\ntoken = "${token}"\n`, 'README.md': 'x\ny\n' });
        rmSync(join(wt, 'kind.txt'));
        symlinkSync('README.md', join(wt, 'kind.txt'));
      });
      const analysis = await analyse(l);
      const secret = analysis.flags.find((flag) => flag.kind === 'secretLike');
      assert.equal(secret?.path, 'big.txt');
      assert.match(secret!.detail, /in added line 3001\./, 'a carriage return does not end a line; line numbers count "\\n" only');
      const kindChange = analysis.files.find((file) => file.path === 'kind.txt');
      assert.deepEqual([kindChange?.status, kindChange?.symlink?.target], ['typeChanged', 'README.md']);
      // The same analysis from the whole patch held in memory (the pure core with addedLines).
      const whole = parseAddedLines(runGit(l.repo, ['diff', '-U0', '--no-color', '--src-prefix=a/', '--dst-prefix=b/', l.base, l.head]));
      assert.deepEqual(
        whole.get('big.txt')?.find((line) => line.text.includes(token)),
        { line: 3001, text: `token = "${token}"` },
      );
      assert.deepEqual(whole.get('kind.txt'), [{ line: 1, text: 'README.md' }]);
    });

    it('refuses a base or head that could be read as an option', async () => {
      const repo = makeRepo();
      await assert.rejects(analyzeChange({ repoRoot: repo, baseSha: '--output=/tmp/x', headSha: 'HEAD' }), /not a commit id or ref/);
    });
  });
});
