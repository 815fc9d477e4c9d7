/**
 * Which files declare dependencies, and which dependencies a change adds. Each
 * manifest format gets a small extractor of dependency names; a name present on
 * the new side but not the old one is a new dependency. Lock files cannot be
 * read that way, so any edit to one is reported.
 */

export type ManifestKind = 'manifest' | 'lockFile';

const LOCK_FILES = new Set([
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'bun.lock',
  'bun.lockb',
  'poetry.lock',
  'pipfile.lock',
  'uv.lock',
  'pdm.lock',
  'cargo.lock',
  'go.sum',
  'gemfile.lock',
  'composer.lock',
  'gradle.lockfile',
]);

type Extractor = (text: string) => Set<string>;

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Whether a path is a dependency manifest or lock file, and its extractor. */
export function manifestKind(path: string): ManifestKind | undefined {
  const name = basename(path).toLowerCase();
  if (LOCK_FILES.has(name)) return 'lockFile';
  return extractorFor(path) ? 'manifest' : undefined;
}

function extractorFor(path: string): Extractor | undefined {
  const name = basename(path).toLowerCase();
  if (name === 'package.json') return packageJsonDependencies;
  if (/^requirements.*\.txt$/.test(name)) return requirementsDependencies;
  if (name === 'pyproject.toml') return pyprojectDependencies;
  if (name === 'go.mod') return goModDependencies;
  if (name === 'cargo.toml') return cargoDependencies;
  if (name === 'pom.xml') return pomDependencies;
  if (name === 'build.gradle' || name === 'build.gradle.kts') return gradleDependencies;
  return undefined;
}

export interface DependencyChange {
  /** Names added by the change (sorted). */
  added: string[];
  /** Set when the new side could not be read, so additions could not be ruled out. */
  unreadable?: string;
}

/** The dependencies a manifest edit adds. `oldText` is undefined for a new file. */
export function addedDependencies(path: string, oldText: string | undefined, newText: string): DependencyChange {
  const extract = extractorFor(path);
  if (!extract) return { added: [] };
  let after: Set<string>;
  try {
    after = extract(newText);
  } catch (error) {
    return { added: [], unreadable: (error as Error).message };
  }
  let before = new Set<string>();
  if (oldText !== undefined) {
    try {
      before = extract(oldText);
    } catch {
      // An unreadable old side: every dependency of the new side counts as new.
    }
  }
  return { added: [...after].filter((name) => !before.has(name)).sort() };
}

const PACKAGE_JSON_SECTIONS = [
  'dependencies',
  'devDependencies',
  'peerDependencies',
  'optionalDependencies',
  'bundleDependencies',
  'bundledDependencies',
  'overrides',
  'resolutions',
];

function packageJsonDependencies(text: string): Set<string> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('package.json is not valid JSON');
  }
  const names = new Set<string>();
  if (!json || typeof json !== 'object') return names;
  for (const section of PACKAGE_JSON_SECTIONS) {
    const value = (json as Record<string, unknown>)[section];
    if (Array.isArray(value))
      for (const name of value) names.add(`${section === 'overrides' || section === 'resolutions' ? `${section}:` : ''}${String(name)}`);
    else if (value && typeof value === 'object')
      for (const name of Object.keys(value))
        names.add(`${section === 'overrides' || section === 'resolutions' ? `${section}:` : ''}${name}`);
  }
  return names;
}

/** "Flask[async]>=2 ; python_version>'3'" → "flask"; options and includes are skipped. */
function requirementName(spec: string): string | undefined {
  const text = spec.trim();
  if (!text || text.startsWith('#') || text.startsWith('-')) return undefined;
  if (/^(?:git\+|https?:|file:)/i.test(text)) return text.split('#egg=')[1]?.toLowerCase() ?? text;
  const match = /^([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(text);
  return match?.[1]?.toLowerCase().replace(/[._]+/g, '-');
}

function requirementsDependencies(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    const name = requirementName(line.replace(/\s+#.*$/, ''));
    if (name) names.add(name);
  }
  return names;
}

function pyprojectDependencies(text: string): Set<string> {
  const names = new Set<string>();
  let section = '';
  let inArray = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    const header = /^\[+([^\]]+)\]+$/.exec(line);
    if (header) {
      section = header[1]!.trim();
      inArray = false;
      continue;
    }
    const dependencySection =
      /(?:^|\.)(?:dev-)?dependencies$|^project\.optional-dependencies$|^dependency-groups$|\.group\.[^.]+\.dependencies$/.test(section);
    if (section === 'project' && /^(?:dependencies)\s*=/.test(line)) inArray = true;
    else if (dependencySection && /=\s*\[/.test(line)) inArray = true;
    else if (dependencySection && /^[A-Za-z0-9_.-]+\s*=/.test(line) && !/^python\s*=/.test(line) && section.includes('poetry')) {
      names.add(line.split('=')[0]!.trim().toLowerCase());
    }
    if (inArray) {
      for (const match of line.matchAll(/["']([^"']+)["']/g)) {
        const name = requirementName(match[1]!);
        if (name) names.add(name);
      }
      if (line.includes(']')) inArray = false;
    }
  }
  return names;
}

function goModDependencies(text: string): Set<string> {
  const names = new Set<string>();
  let inRequire = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\/\/.*$/, '').trim();
    if (/^require\s*\($/.test(line)) {
      inRequire = true;
      continue;
    }
    if (inRequire && line === ')') {
      inRequire = false;
      continue;
    }
    const match = inRequire ? /^(\S+)\s+v\S+/.exec(line) : /^require\s+(\S+)\s+v\S+/.exec(line);
    if (match) names.add(match[1]!);
  }
  return names;
}

function cargoDependencies(text: string): Set<string> {
  const names = new Set<string>();
  let section = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    const header = /^\[+([^\]]+)\]+$/.exec(line);
    if (header) {
      section = header[1]!.trim();
      // [dependencies.serde] is a table for one dependency.
      const table = /(?:^|\.)(?:dev-|build-)?dependencies\.([A-Za-z0-9_-]+)$/.exec(section);
      if (table) names.add(table[1]!);
      continue;
    }
    if (/(?:^|\.)(?:dev-|build-)?dependencies$/.test(section)) {
      const key = /^([A-Za-z0-9_-]+)\s*=/.exec(line);
      if (key) names.add(key[1]!);
    }
  }
  return names;
}

function pomDependencies(text: string): Set<string> {
  const names = new Set<string>();
  const withoutComments = text.replace(/<!--[\s\S]*?-->/g, '');
  for (const block of withoutComments.matchAll(/<(dependency|plugin|extension)>([\s\S]*?)<\/\1>/g)) {
    const body = block[2]!;
    const group = /<groupId>\s*([^<\s]+)\s*<\/groupId>/.exec(body)?.[1] ?? '';
    const artifact = /<artifactId>\s*([^<\s]+)\s*<\/artifactId>/.exec(body)?.[1];
    if (artifact) names.add(`${group}:${artifact}`);
  }
  return names;
}

const GRADLE_CONFIGURATIONS =
  /\b(?:implementation|api|compile|compileOnly|runtimeOnly|runtime|testImplementation|testCompileOnly|testRuntimeOnly|androidTestImplementation|annotationProcessor|kapt|ksp|classpath|developmentOnly|compileOnlyApi|[a-z]+Implementation)\b\s*\(?\s*(?:platform\(\s*)?(?:"([^"]+)"|'([^']+)'|(libs\.[A-Za-z0-9_.]+)|group\s*[:=]\s*["']([^"']+)["']\s*,\s*name\s*[:=]\s*["']([^"']+)["'])/g;

function gradleDependencies(text: string): Set<string> {
  const names = new Set<string>();
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const match of code.matchAll(GRADLE_CONFIGURATIONS)) {
    const coordinate = match[1] ?? match[2];
    if (coordinate) names.add(coordinate.split(':').slice(0, 2).join(':'));
    else if (match[3]) names.add(match[3]);
    else if (match[4] && match[5]) names.add(`${match[4]}:${match[5]}`);
  }
  return names;
}
