import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { engineInstallHelp, parseOsRelease } from '../../src/core/sandbox/engineInstall';

describe('engine install help: the command the walkthrough gives when no container engine answers', () => {
  it('reads ID and ID_LIKE of /etc/os-release, quoted or not', () => {
    assert.deepEqual(parseOsRelease('NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n'), {
      id: 'linuxmint',
      idLike: 'ubuntu debian',
    });
    assert.deepEqual(parseOsRelease('ID="fedora"\n'), { id: 'fedora' });
    assert.deepEqual(parseOsRelease(''), {});
  });

  it('names the package manager of the distribution, or of the one it is like', () => {
    assert.equal(engineInstallHelp('linux', { id: 'debian' }).command, 'sudo apt-get install -y podman');
    assert.equal(engineInstallHelp('linux', { id: 'linuxmint', idLike: 'ubuntu debian' }).command, 'sudo apt-get install -y podman');
    assert.equal(engineInstallHelp('linux', { id: 'rocky', idLike: 'rhel centos fedora' }).command, 'sudo dnf install -y podman');
    assert.equal(engineInstallHelp('linux', { id: 'arch' }).system, 'Arch Linux');
    const unknown = engineInstallHelp('linux', { id: 'nixos' });
    assert.equal(unknown.system, 'Linux');
    assert.match(unknown.command, /podman/);
  });

  it('on macOS and Windows: podman with its machine, or Docker Desktop, and that the process sandbox is Linux-only', () => {
    for (const platform of ['darwin', 'win32']) {
      const help = engineInstallHelp(platform);
      assert.match(help.command, /podman machine init && podman machine start/);
      assert.match(help.note, /Docker Desktop.*Linux-only/s);
    }
  });

  it('this machine: its own os-release gives a known system', function () {
    let text: string;
    try {
      text = readFileSync('/etc/os-release', 'utf8');
    } catch {
      this.skip();
    }
    assert.notEqual(engineInstallHelp('linux', parseOsRelease(text)).system, 'Linux', text.slice(0, 200));
  });
});
