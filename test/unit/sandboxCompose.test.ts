import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkCompose, describeComposeRefusals } from '../../src/core/sandbox/composeCheck';
import type { ResolvedTask } from '../../src/core/sandbox/lanesConfig';
import { ContainerSandbox, resolveDevcontainerCli } from '../../src/infra/sandbox/containerSandbox';
import { detectEngine } from '../../src/infra/sandbox/engine';
import { runTaskSequence } from '../../src/infra/sandbox/taskRun';
import { SandboxError, type SandboxSource } from '../../src/infra/sandbox/types';

const IMAGE = process.env.AGENT_LANES_SANDBOX_IMAGE ?? 'localhost/agent-lanes-sandbox:test';
const CONFIG = '.devcontainer/devcontainer.json';
const COMPOSE = '.devcontainer/docker-compose.yml';

function task(id: string, command: string): ResolvedTask {
  return { id, command, timeoutSeconds: 60, test: false, required: true, source: 'repository' };
}

/** A Compose dev container as the base commit has it: devcontainer.json and the Compose file. */
function composeSource(compose: string, config: Record<string, unknown> = {}): SandboxSource {
  const files: Record<string, string> = {
    [CONFIG]: JSON.stringify({ dockerComposeFile: 'docker-compose.yml', service: 'app', updateRemoteUserUID: false, ...config }),
    [COMPOSE]: compose,
  };
  return { devcontainer: { path: CONFIG, text: files[CONFIG]! }, readBaseFile: async (path) => files[path], prepare: [] };
}

function refusedWhere(compose: string, allow = {}): string[] {
  return checkCompose(
    { dockerComposeFile: 'docker-compose.yml', service: 'app' },
    CONFIG,
    [{ path: COMPOSE, text: compose }],
    allow,
  ).refusals.map((refusal) => refusal.where);
}

const HOSTILE = `
services:
  app:
    image: ${IMAGE}
    privileged: true
    volumes:
      - /:/host
      - /var/run/docker.sock:/var/run/docker.sock
  helper:
    image: ${IMAGE}
    cap_add: [SYS_ADMIN]
    network_mode: host
    pid: host
    env_file: /etc/environment
    build:
      context: ../..
`;

describe('Docker Compose dev containers: the check of every service', () => {
  it('refuses a privileged service, a bind of / and the docker socket, naming service, field and policy setting', () => {
    const check = checkCompose({ dockerComposeFile: 'docker-compose.yml', service: 'app' }, CONFIG, [{ path: COMPOSE, text: HOSTILE }]);
    const message = describeComposeRefusals(CONFIG, check);
    assert.match(
      message,
      /- \.devcontainer\/docker-compose\.yml: services\.app\.privileged: runs the container with every capability.*\(policy can allow it with lanes\.sandbox\.devcontainer\.allowPrivileged\)/,
    );
    assert.match(
      message,
      /services\.app\.volumes\[0\]: \/:\/host: mounts \/ from the host \(policy can allow it with lanes\.sandbox\.devcontainer\.allowedMounts\)/,
    );
    assert.match(
      message,
      /services\.app\.volumes\[1\]: \/var\/run\/docker\.sock:\/var\/run\/docker\.sock: mounts the container engine's socket/,
    );
    assert.match(
      message,
      /services\.helper\.cap_add\[0\]: SYS_ADMIN: adds the Linux capability SYS_ADMIN \(policy can allow it with lanes\.sandbox\.devcontainer\.allowedCapabilities\)/,
    );
    assert.match(
      message,
      /services\.helper\.network_mode: host: shares the host's network \(policy can allow it with lanes\.sandbox\.devcontainer\.allowHostNetwork\)/,
    );
    assert.match(message, /services\.helper\.pid: host: shares the host's pid namespace \(no policy setting allows it\)/);
    assert.match(message, /services\.helper\.env_file: \/etc\/environment: reads a file on the host/);
    assert.match(message, /services\.helper\.build\.context: \.\.\/\.\.: sends a folder outside the repository to the build/);
  });

  it('refuses what only Compose can ask for: host variables, extends and include of outside files, shared and driver-backed volumes', () => {
    assert.deepEqual(
      refusedWhere(`
include: [../other.yml]
services:
  app:
    image: "\${BASE_IMAGE}"
    environment: { TOKEN: "$GITHUB_TOKEN", PRICE: "$$5", NPM_TOKEN: }
    extends: { file: /srv/base.yml, service: base }
    volumes: [cache:/cache, shared:/shared, undeclared:/u, ./data:/data, ../../sibling:/s]
    security_opt: [seccomp:unconfined, no-new-privileges:true]
    devices: [/dev/kvm]
    sysctls: { net.ipv4.ip_forward: 1 }
    labels: { devcontainer.metadata: '[{"privileged": true}]', team: core }
    mystery: 1
volumes:
  cache: {}
  shared: { external: true }
  hostdir: { driver_opts: { type: none, o: bind, device: / } }
`),
      [
        '.devcontainer/docker-compose.yml: include',
        '.devcontainer/docker-compose.yml: volumes.hostdir',
        '.devcontainer/docker-compose.yml: services.app.image',
        '.devcontainer/docker-compose.yml: services.app.environment.TOKEN',
        '.devcontainer/docker-compose.yml: services.app.environment: NPM_TOKEN',
        '.devcontainer/docker-compose.yml: services.app.extends.file: /srv/base.yml',
        '.devcontainer/docker-compose.yml: services.app.volumes[1]: shared:/shared',
        '.devcontainer/docker-compose.yml: services.app.volumes[2]: undeclared:/u',
        '.devcontainer/docker-compose.yml: services.app.volumes[4]: ../../sibling:/s',
        '.devcontainer/docker-compose.yml: services.app.security_opt[0]: seccomp:unconfined',
        '.devcontainer/docker-compose.yml: services.app.devices',
        '.devcontainer/docker-compose.yml: services.app.sysctls',
        '.devcontainer/docker-compose.yml: services.app.labels: devcontainer.metadata',
        '.devcontainer/docker-compose.yml: services.app.mystery',
      ],
    );
  });

  it('passes the official templates’ shape: the workspace above the repository, a build, a private volume, a database', () => {
    assert.deepEqual(
      refusedWhere(`
version: '3.8'
services:
  app:
    build: { context: .., dockerfile: .devcontainer/Dockerfile }
    env_file: [.env]
    volumes: [../..:/workspaces:cached]
    command: sleep infinity
    network_mode: service:db
  db:
    image: postgres:latest
    container_name: postgresdb
    restart: unless-stopped
    volumes: [postgres-data:/var/lib/postgresql/data]
    ports: ["5432:5432"]
volumes:
  postgres-data:
`),
      [],
    );
  });

  it('lets policy allow a host folder and a capability, and records them as allowed', () => {
    const check = checkCompose(
      { dockerComposeFile: 'docker-compose.yml', service: 'app' },
      CONFIG,
      [{ path: COMPOSE, text: `services:\n  app:\n    image: x\n    cap_add: [NET_ADMIN]\n    volumes: [/opt/cache:/cache:ro]\n` }],
      { allowMounts: ['/opt/cache'], allowCapAdd: ['NET_ADMIN'] },
    );
    assert.deepEqual(check.refusals, []);
    assert.deepEqual(
      check.allowed.map((item) => item.allowedBy),
      ['allowCapAdd', 'allowMounts'],
    );
  });
});

describe('Docker Compose dev containers (real podman and podman-compose)', function () {
  this.timeout(300_000);
  let root: string;
  let repo: string;
  let sandbox: ContainerSandbox;
  const changeIds: string[] = [];

  function worktree(): { changeId: string; path: string } {
    const changeId = randomBytes(4).toString('hex');
    changeIds.push(changeId);
    const path = join(root, 'worktrees', changeId);
    execFileSync('git', ['worktree', 'add', '-q', '-b', `lanes/${changeId}`, path, 'main'], { cwd: repo, stdio: 'ignore' });
    return { changeId, path };
  }

  async function changeContainers(changeId: string): Promise<string[]> {
    return (await sandbox.listSandboxContainers()).filter((c) => c.changeId === changeId).map((c) => c.name);
  }

  before(async function () {
    this.timeout(600_000);
    if (spawnSync('podman-compose', ['--version']).status !== 0) this.skip();
    const detection = await detectEngine('podman');
    assert.ok(detection.found, detection.found ? '' : detection.message);
    execFileSync('bash', ['scripts/build-sandbox-image.sh'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const cli = await resolveDevcontainerCli({ extensionRoot: process.cwd() });
    assert.ok('path' in cli, 'error' in cli ? cli.error : '');
    root = mkdtempSync(join(tmpdir(), 'lanes-compose-'));
    repo = join(root, 'repo');
    mkdirSync(repo);
    execFileSync('git', ['init', '-q', '-b', 'main'], { cwd: repo });
    writeFileSync(join(repo, 'README.md'), 'sample\n');
    execFileSync('git', ['add', '.'], { cwd: repo });
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-q', '-m', 'base'], { cwd: repo });
    sandbox = new ContainerSandbox({
      engine: detection.engine,
      devcontainerCli: cli.path,
      stateDir: join(root, 'storage', 'sandbox'),
      defaultImage: IMAGE,
      upTimeoutMs: 180_000,
    });
  });

  after(async () => {
    for (const changeId of changeIds) await sandbox?.removeSandbox(changeId).catch(() => undefined);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('runs a task in the app service of a two-service project, with the worktree mounted and the network off', async () => {
    const { changeId, path } = worktree();
    const source = composeSource(
      `services:
  app:
    image: ${IMAGE}
    command: sleep infinity
    volumes:
      - ../..:/workspaces:cached
      - cache:/cache
    depends_on: [db]
  db:
    image: ${IMAGE}
    command: sleep infinity
volumes:
  cache:
`,
      { workspaceFolder: '/workspaces/${localWorkspaceFolderBasename}' },
    );
    const logDir = join(root, 'logs');
    const prepared = await sandbox.prepare({ changeId, worktreePath: path, source, policy: {}, logDir });
    const probe = `node -e "const s=require('net').connect({host:'1.1.1.1',port:53,timeout:3000});s.on('connect',()=>{console.log('CONNECTED');process.exit(0)});s.on('timeout',()=>{console.log('TIMEOUT');process.exit(2)});s.on('error',e=>{console.log('NETWORK ERROR',e.code);process.exit(1)})"`;
    const [read, network] = await runTaskSequence(
      prepared,
      [task('read', 'pwd; cat README.md; ls /workspaces; echo hi > /cache/x && cat /cache/x'), task('network', probe)],
      { logDir },
    );
    assert.equal(read!.outcome, 'passed', read!.message);
    assert.equal(read!.networkMode, 'none');
    const log = readFileSync(read!.logFile!, 'utf8');
    assert.equal(log, `/workspaces/${changeId}\nsample\n${changeId}\nhi\n`, 'only the worktree is under /workspaces');
    assert.equal(network!.outcome, 'failed');
    assert.match(readFileSync(network!.logFile!, 'utf8'), /NETWORK ERROR/);
    assert.equal(prepared.preparation?.networkMode, 'none');
    assert.equal((await changeContainers(changeId)).length, 2, 'both services run, labelled for the change');
    for (const id of execFileSync('podman', ['ps', '-a', '-q', '--filter', `label=dev.agentlanes.change=${changeId}`], { encoding: 'utf8' })
      .trim()
      .split('\n')) {
      const mode = execFileSync('podman', ['inspect', '--format', '{{.HostConfig.NetworkMode}}', id], { encoding: 'utf8' }).trim();
      assert.equal(mode, 'none', `service container ${id} has network none`);
    }
    // A reboot: every service stopped. The next run starts them all again and reuses the prepared project.
    const ids = execFileSync('podman', ['ps', '-q', '--filter', `label=dev.agentlanes.change=${changeId}`], { encoding: 'utf8' })
      .trim()
      .split('\n');
    execFileSync('podman', ['stop', '-t', '0', ...ids], { stdio: 'ignore' });
    const again = await sandbox.prepare({ changeId, worktreePath: path, source, policy: {}, logDir });
    assert.equal(again.auditDetails.reused, true, 'the prepared project is reused, not recreated');
    const [after] = await runTaskSequence(again, [task('again', 'cat /cache/x')], { logDir });
    assert.equal(after!.outcome, 'passed', after!.message);
    assert.equal(after!.networkMode, 'none');
    const running = execFileSync('podman', ['ps', '-q', '--filter', `label=dev.agentlanes.change=${changeId}`], { encoding: 'utf8' })
      .trim()
      .split('\n');
    assert.deepEqual([...running].sort(), [...ids].sort(), 'both services run again');
    await sandbox.removeSandbox(changeId);
    assert.deepEqual(await changeContainers(changeId), []);
    const leftovers = execFileSync('podman', ['volume', 'ls', '--format', '{{.Name}}'], { encoding: 'utf8' });
    assert.ok(!leftovers.includes(`agentlanes-${changeId}`), 'the project volume is removed with the sandbox');
  });

  it('runs the official Postgres template’s shape: a build from the base commit’s Dockerfile with no network, an env file, network_mode: service:db ignored', async () => {
    const { changeId, path } = worktree();
    const source = composeSource(
      `version: '3.8'
services:
  app:
    build:
      context: ..
      dockerfile: .devcontainer/Dockerfile
    env_file: [.env]
    volumes:
      - ../..:/workspaces:cached
    command: sleep infinity
    network_mode: service:db
  db:
    image: ${IMAGE}
    command: sleep infinity
    restart: unless-stopped
    volumes:
      - postgres-data:/var/lib/postgresql/data
volumes:
  postgres-data:
`,
      { workspaceFolder: '/workspaces/${localWorkspaceFolderBasename}' },
    );
    const files: Record<string, string> = {
      '.devcontainer/Dockerfile': `FROM ${IMAGE}\nRUN echo built-without-network > /built.txt\n`,
      '.devcontainer/.env': 'POSTGRES_USER=postgres\n',
    };
    const readBaseFile = source.readBaseFile!;
    const logDir = join(root, 'logs');
    const prepared = await sandbox.prepare({
      changeId,
      worktreePath: path,
      source: { ...source, readBaseFile: async (file) => files[file] ?? (await readBaseFile(file)) },
      policy: {},
      logDir,
    });
    const [evidence] = await runTaskSequence(prepared, [task('env', 'cat /built.txt; echo "$POSTGRES_USER"; pwd')], { logDir });
    assert.equal(evidence!.outcome, 'passed', evidence!.message);
    assert.equal(readFileSync(evidence!.logFile!, 'utf8'), `built-without-network\npostgres\n/workspaces/${changeId}\n`);
    assert.equal(evidence!.networkMode, 'none');
    assert.match(evidence!.image ?? '', new RegExp(`^localhost/agentlanes-${changeId}-change-app:sandbox$`));
    await sandbox.removeSandbox(changeId);
    const images = execFileSync('podman', ['images', '--format', '{{.Repository}}'], { encoding: 'utf8' });
    assert.ok(!images.includes(`agentlanes-${changeId}`), 'the built image is removed with the sandbox');
  });

  it('prepares with the network policy opens, then disconnects every service before a task runs', async () => {
    const { changeId, path } = worktree();
    const source = composeSource(
      `services:\n  app:\n    image: ${IMAGE}\n    command: sleep infinity\n    volumes: [../..:/workspaces]\n  db:\n    image: ${IMAGE}\n    command: sleep infinity\n`,
      { workspaceFolder: '/workspaces/${localWorkspaceFolderBasename}' },
    );
    const logDir = join(root, 'logs');
    const prepared = await sandbox.prepare({ changeId, worktreePath: path, source, policy: { preparationNetwork: 'open' }, logDir });
    assert.equal(prepared.preparation?.networkMode, 'bridge');
    const [evidence] = await runTaskSequence(prepared, [task('net', 'cat /sys/class/net/*/operstate | wc -l; ls /sys/class/net')], {
      logDir,
    });
    assert.equal(evidence!.outcome, 'passed', evidence!.message);
    assert.equal(evidence!.networkMode, 'none');
    assert.equal(readFileSync(evidence!.logFile!, 'utf8'), '1\nlo\n', 'only the loopback is left in the app service');
    const ids = execFileSync('podman', ['ps', '-q', '--filter', `label=dev.agentlanes.change=${changeId}`], { encoding: 'utf8' })
      .trim()
      .split('\n');
    assert.equal(ids.length, 2);
    for (const id of ids) {
      const networks = execFileSync('podman', ['inspect', '--format', '{{len .NetworkSettings.Networks}}', id], {
        encoding: 'utf8',
      }).trim();
      assert.equal(networks, '0', `service container ${id} is disconnected from every network`);
    }
  });

  it('refuses a folder of the repository that the agent turned into a symbolic link out of the worktree, before anything starts', async () => {
    const { changeId, path } = worktree();
    mkdirSync(join(path, '.devcontainer'), { recursive: true });
    symlinkSync('/etc', join(path, '.devcontainer', 'data'));
    const source = composeSource(`services:\n  app:\n    image: ${IMAGE}\n    volumes: [./data:/data]\n`);
    let error: unknown;
    try {
      await sandbox.prepare({ changeId, worktreePath: path, source, policy: {}, logDir: join(root, 'logs') });
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof SandboxError, String(error));
    assert.equal(error.kind, 'refused');
    assert.match(
      error.message,
      /The mount source of service app \(\.devcontainer\/data\) leads outside the change's worktree \(a symbolic link to \/etc\)/,
    );
    assert.deepEqual(await changeContainers(changeId), []);
  });

  it('refuses a hostile Compose file (privileged, / and the docker socket) before anything starts', async () => {
    const { changeId, path } = worktree();
    let error: unknown;
    try {
      await sandbox.prepare({ changeId, worktreePath: path, source: composeSource(HOSTILE), policy: {}, logDir: join(root, 'logs') });
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof SandboxError, String(error));
    assert.equal(error.kind, 'refused');
    assert.match(error.message, /services\.app\.privileged/);
    assert.match(error.message, /services\.app\.volumes\[0\]: \/:\/host/);
    assert.match(error.message, /docker\.sock/);
    assert.deepEqual(await changeContainers(changeId), []);
    const all = execFileSync('podman', ['ps', '-a', '--filter', `label=com.docker.compose.project=agentlanes-${changeId}-change`, '-q'], {
      encoding: 'utf8',
    });
    assert.equal(all.trim(), '');
  });
});
