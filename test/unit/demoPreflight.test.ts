import assert from 'node:assert/strict';
import { demoPreflightProblem, type MachineFacts } from '../../scripts/demo-preflight.mjs';

// `npm run demo` needs Debian or Ubuntu and root (apt-get, /etc/containers): on
// any other machine it must say so before it changes anything, and what to do instead.
const DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n';
const UBUNTU = 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nID_LIKE=debian\n';
const FEDORA = 'PRETTY_NAME="Fedora Linux 40 (Workstation Edition)"\nID=fedora\n';
const ready: MachineFacts = { platform: 'linux', osRelease: DEBIAN, uid: 1000, missingPackages: [], containersConfOk: true };

describe('npm run demo: the machine check before it starts', () => {
  it('lets it run on Debian or Ubuntu as root, or as a user when nothing is left to install', () => {
    assert.equal(demoPreflightProblem({ ...ready, uid: 0, missingPackages: ['chromium'], containersConfOk: false }), undefined);
    assert.equal(demoPreflightProblem({ ...ready, osRelease: UBUNTU, uid: 0 }), undefined);
    assert.equal(demoPreflightProblem(ready), undefined);
  });

  it('refuses macOS, Windows and other Linux distributions, pointing at the VSIX and the quick start', () => {
    for (const [facts, name] of [
      [{ ...ready, platform: 'darwin' }, 'macOS'],
      [{ ...ready, platform: 'win32' }, 'Windows'],
      [{ ...ready, osRelease: FEDORA }, 'Fedora Linux 40 \\(Workstation Edition\\)'],
    ] as const) {
      const problem = demoPreflightProblem(facts) ?? '';
      assert.match(problem, /runs on Debian or Ubuntu, as root\./);
      assert.match(problem, new RegExp(`This machine runs ${name}\\.`));
      assert.match(problem, /code --install-extension dist\/agent-lanes\.vsix/);
      assert.match(problem, /"Quick start" in README\.md/);
    }
  });

  it('as a user on Debian, lists the exact commands still needed as root', () => {
    const problem = demoPreflightProblem({ ...ready, missingPackages: ['podman', 'bubblewrap'], containersConfOk: false }) ?? '';
    assert.match(problem, /You are not root, and it still needs to do this:/);
    assert.match(problem, /^ {2}sudo apt-get install --no-install-recommends podman bubblewrap$/m);
    assert.match(problem, /sudo tee \/etc\/containers\/containers\.conf {3}# replaces that file$/m);
  });
});
