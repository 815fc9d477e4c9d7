// @ts-check
// Before `npm run demo` changes anything: can it run on this machine? It sets up
// a whole test machine (scripts/setup-test-env.sh): apt-get installs, and
// podman's configuration in /etc/containers. Elsewhere it says so and what to do
// instead, rather than failing half way with "apt-get: command not found".
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The Debian packages scripts/setup-test-env.sh installs, by the program that shows each is there. */
const PACKAGES = [
  ['chromium', 'chromium'],
  ['rg', 'ripgrep'],
  ['podman', 'podman'],
  ['runc', 'runc'],
  ['podman-compose', 'podman-compose'],
  ['debootstrap', 'debootstrap'],
  ['bwrap', 'bubblewrap'],
];

const CONTAINERS_CONF = '/etc/containers/containers.conf';

const ELSEWHERE = `To use Agent Lanes on this machine instead: "npm ci && npm run package", then
"code --install-extension dist/agent-lanes.vsix", and follow "Quick start" in README.md.`;

/**
 * Why the demo cannot run here, or undefined when it can. Pure: `facts` come from machineFacts().
 * @param {{ platform: string, osRelease: string | undefined, uid: number | undefined, missingPackages: string[], containersConfOk: boolean }} facts
 * @returns {string | undefined}
 */
export function demoPreflightProblem(facts) {
  const what =
    "npm run demo sets up a test machine: it installs Chromium, podman and bubblewrap with apt-get and sets podman's runtime in /etc/containers/containers.conf, so it runs on Debian or Ubuntu, as root.";
  if (facts.platform !== 'linux') {
    const name = { darwin: 'macOS', win32: 'Windows' }[facts.platform] ?? facts.platform;
    return `${what}\nThis machine runs ${name}.\n${ELSEWHERE}`;
  }
  const release = facts.osRelease ?? '';
  const ids = [/^ID=(.*)$/m.exec(release)?.[1], /^ID_LIKE=(.*)$/m.exec(release)?.[1]].join(' ').replace(/"/g, '');
  if (!/\b(debian|ubuntu)\b/.test(ids)) {
    const name = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release)?.[1] ?? 'a Linux other than Debian or Ubuntu';
    return `${what}\nThis machine runs ${name}.\n${ELSEWHERE}`;
  }
  if (facts.uid === 0) return undefined;
  const steps = [];
  if (facts.missingPackages.length) steps.push(`sudo apt-get install --no-install-recommends ${facts.missingPackages.join(' ')}`);
  if (!facts.containersConfOk)
    steps.push(
      `sudo mkdir -p /etc/containers && printf '[containers]\\ndefault_ulimits = []\\n[engine]\\nruntime = "runc"\\n' | sudo tee ${CONTAINERS_CONF}   # replaces that file`,
    );
  if (!steps.length) return undefined;
  return `${what}\nYou are not root, and it still needs to do this:\n${steps.map((s) => `  ${s}`).join('\n')}\nRun those yourself (then npm run demo again), or run the demo as root.\n${ELSEWHERE}`;
}

/** The facts demoPreflightProblem needs, read from this machine. */
export function machineFacts() {
  const has = (program) => spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
  const read = (file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  };
  const missingPackages = PACKAGES.filter(([program]) => !has(program)).map(([, name]) => name);
  if (spawnSync('dpkg', ['-s', 'libkrb5-dev'], { stdio: 'ignore' }).status !== 0) missingPackages.push('libkrb5-dev');
  return {
    platform: process.platform,
    osRelease: read('/etc/os-release'),
    uid: process.getuid?.(),
    missingPackages,
    containersConfOk: /runtime = "runc"/.test(read(CONTAINERS_CONF) ?? ''),
  };
}
