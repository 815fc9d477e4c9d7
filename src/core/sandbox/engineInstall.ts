/**
 * How to install a container engine on the user's operating system: the
 * "Check the Container Engine" step of the walkthrough says this when none
 * answers. Podman first where the system packages it (rootless, no daemon);
 * Docker Desktop where podman needs a virtual machine anyway.
 */
export interface EngineInstallHelp {
  /** What the system is, in words. */
  system: string;
  /** One command to paste into a terminal. */
  command: string;
  /** What else to know, or where to read. */
  note: string;
}

/** Linux distributions by the ID and ID_LIKE of /etc/os-release. */
const LINUX: { ids: readonly string[]; system: string; command: string }[] = [
  { ids: ['debian', 'ubuntu'], system: 'Debian or Ubuntu', command: 'sudo apt-get install -y podman' },
  { ids: ['fedora', 'rhel', 'centos'], system: 'Fedora or RHEL', command: 'sudo dnf install -y podman' },
  { ids: ['arch'], system: 'Arch Linux', command: 'sudo pacman -S --noconfirm podman' },
  { ids: ['opensuse', 'suse', 'sles'], system: 'openSUSE', command: 'sudo zypper install -y podman' },
  { ids: ['alpine'], system: 'Alpine Linux', command: 'sudo apk add podman' },
];

export function engineInstallHelp(platform: string, osRelease: { id?: string; idLike?: string } = {}): EngineInstallHelp {
  if (platform === 'darwin')
    return {
      system: 'macOS',
      command: 'brew install podman && podman machine init && podman machine start',
      note: 'Or install Docker Desktop (https://docs.docker.com/desktop/setup/install/mac-install/). The process sandbox (bubblewrap) is Linux-only, so on macOS tasks and agents run in containers.',
    };
  if (platform === 'win32')
    return {
      system: 'Windows',
      command: 'winget install -e --id RedHat.Podman && podman machine init && podman machine start',
      note: 'Or install Docker Desktop with the WSL 2 back end (https://docs.docker.com/desktop/setup/install/windows-install/). The process sandbox (bubblewrap) is Linux-only.',
    };
  const names = [osRelease.id ?? '', ...(osRelease.idLike ?? '').split(/\s+/)].map((name) => name.toLowerCase()).filter(Boolean);
  const known = LINUX.find((entry) => names.some((name) => entry.ids.includes(name)));
  return {
    system: known?.system ?? 'Linux',
    command: known?.command ?? "sudo apt-get install -y podman   # or your distribution's podman package",
    note: 'Rootless podman works. On a host with cgroups v1, also install runc and set runtime = "runc" in /etc/containers/containers.conf. Docker Engine works too (https://docs.docker.com/engine/install/).',
  };
}

/** ID and ID_LIKE of an /etc/os-release file's text. */
export function parseOsRelease(text: string): { id?: string; idLike?: string } {
  const read = (key: string) => new RegExp(`^${key}=("?)([^"\\n]*)\\1$`, 'm').exec(text)?.[2];
  const id = read('ID');
  const idLike = read('ID_LIKE');
  return { ...(id ? { id } : {}), ...(idLike ? { idLike } : {}) };
}
