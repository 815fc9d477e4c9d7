import picomatch from 'picomatch';

/**
 * How every policy glob is matched: against repository-relative paths with
 * "/" separators; dot files and dot folders included (a `**` that skipped
 * `.github` or `.env` would be a hole); unbalanced brackets are errors rather
 * than literals, so a typo is reported instead of silently matching nothing.
 */
const GLOB_OPTIONS: picomatch.PicomatchOptions = Object.freeze({ dot: true, strictBrackets: true, windows: false });

/** Why a glob cannot be used in a policy, or undefined when it is fine. */
export function globProblem(glob: string): string | undefined {
  if (glob.length === 0) return 'expected a non-empty glob such as "infra/**"';
  if (glob.startsWith('/'))
    return `"${glob}" starts with "/"; globs are matched against paths relative to the repository root, so write "${glob.replace(/^\/+/, '')}"`;
  if (glob.startsWith('!'))
    return `"${glob}" is negated; negation is not supported. Write the rule for the paths it covers and add a later "allow" rule for the exception`;
  if (glob.startsWith('./')) return `"${glob}" starts with "./"; write "${glob.slice(2)}"`;
  if (glob.split('/').includes('..')) return `"${glob}" contains ".."; globs cannot leave the repository`;
  try {
    picomatch.makeRe(glob, GLOB_OPTIONS);
  } catch (error) {
    // picomatch says "Missing closing: \"}\" - use \"\\}\" …": say it in the policy's words.
    const missing = /Missing closing: "(.)"/.exec((error as Error).message)?.[1];
    const opening = missing ? ({ '}': '{', ']': '[', ')': '(' } as Record<string, string>)[missing] : undefined;
    if (missing && opening)
      return `invalid glob "${glob}": a "${opening}" is never closed; add the "${missing}", or write "\\${opening}" to match the character "${opening}" itself`;
    return `invalid glob "${glob}": ${(error as Error).message}`;
  }
  return undefined;
}

interface Entry<T> {
  readonly order: number;
  readonly glob: string;
  /** The glob as indexed: lower case when the index ignores case. */
  readonly key: string;
  readonly payload: T;
  regex?: RegExp;
  stamp: number;
}

interface TrieNode<T> {
  children: Map<string, TrieNode<T>>;
  /** Rules that can match anything below this node. */
  plain: Entry<T>[];
  /** Rules whose last segment is `*.ext`: only files with that extension can match. */
  byExtension: Map<string, Entry<T>[]>;
  /** Rules with a literal segment after their base (`**\/secrets/**`): only paths containing it can match. */
  bySegment: Map<string, Entry<T>[]>;
}

const newNode = <T>(): TrieNode<T> => ({ children: new Map(), plain: [], byExtension: new Map(), bySegment: new Map() });

const EXTENSION_SEGMENT = /^\*((?:\.[^./*?[\]{}()!+@\\]+)+)$/;
const WILDCARD = /[*?!+@]/;

function push<T>(map: Map<string, Entry<T>[]>, key: string, entry: Entry<T>): void {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
}

const MAX_ALTERNATIVES = 64;

/**
 * The alternatives of a glob's comma braces (`{a,b}/x` → `a/x`, `b/x`), or
 * undefined when it has none or any brace is of a kind not expanded here
 * (nested, a range such as `{1..3}`, no comma, unbalanced, too many
 * alternatives): such a glob is then filed whole, where nothing narrows it.
 */
function expandBraces(glob: string): string[] | undefined {
  // Inside a class or an extglob a brace is not an alternation: leave such globs whole.
  if (!glob.includes('{') || /[[\]()]/.test(glob)) return undefined;
  let results = [''];
  let rest = glob;
  for (;;) {
    const start = rest.indexOf('{');
    if (start < 0) {
      if (rest.includes('}')) return undefined;
      return results.map((prefix) => prefix + rest);
    }
    const end = rest.indexOf('}', start);
    if (end < 0) return undefined;
    const head = rest.slice(0, start);
    const body = rest.slice(start + 1, end);
    if (head.includes('}') || body.includes('{') || body.includes('..') || !body.includes(',')) return undefined;
    const options = body.split(',');
    // picomatch reads `a{,}b` as literal text as well as `ab`: empty alternatives are left whole.
    if (options.includes('')) return undefined;
    if (results.length * options.length > MAX_ALTERNATIVES) return undefined;
    results = results.flatMap((prefix) => options.map((option) => prefix + head + option));
    rest = rest.slice(end + 1);
  }
}

function extensionOf(path: string): string | undefined {
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  return dot > slash ? path.slice(dot + 1) : undefined;
}

/**
 * Matches many globs against many paths without testing every glob against
 * every path: globs are filed under their literal leading folders (a trie),
 * then under a required extension or literal segment; comma braces are filed
 * once per alternative. What nothing narrows is tried against every path. The index only narrows
 * the candidates; each candidate is still confirmed with picomatch's own
 * regular expression, so results are exactly picomatch's.
 */
export class GlobIndex<T> {
  private readonly root = newNode<T>();
  private readonly exact = new Map<string, Entry<T>[]>();
  private size = 0;
  private stamp = 0;
  private readonly caseInsensitive: boolean;
  private readonly matchOptions: picomatch.PicomatchOptions;

  /**
   * `caseInsensitive`: the checkout's file system ignores case (macOS and
   * Windows by default), so `.GitHub/Workflows/x.yml` is the folder
   * `.github/workflows/**` names, and must match it.
   */
  constructor(options: { caseInsensitive?: boolean } = {}) {
    this.caseInsensitive = options.caseInsensitive ?? false;
    this.matchOptions = this.caseInsensitive ? { ...GLOB_OPTIONS, nocase: true } : GLOB_OPTIONS;
  }

  /** Adds a glob that was validated with globProblem. Insertion order is kept in results. */
  add(glob: string, payload: T): void {
    const key = this.caseInsensitive ? glob.toLowerCase() : glob;
    const entry: Entry<T> = { order: this.size++, glob, key, payload, stamp: 0 };
    // `{docs,site}/x/**` is filed once per alternative (the entry is confirmed once per path, by its stamp).
    const alternatives = glob.includes('\\') ? undefined : expandBraces(key);
    if (!alternatives) return this.place(key, entry);
    for (const alternative of alternatives) this.place(alternative, entry);
    // picomatch also matches a path equal to the glob's own text (`a{b,c}d` itself).
    push(this.exact, key, entry);
  }

  /** Files `entry` where paths `pattern` can match will look for it; the root's plain list when nothing narrows it. */
  private place(pattern: string, entry: Entry<T>): void {
    const scan = picomatch.scan(pattern, GLOB_OPTIONS);
    if (pattern.includes('\\') || scan.negated || scan.prefix) {
      this.root.plain.push(entry);
      return;
    }
    if (!scan.isGlob) {
      push(this.exact, pattern, entry);
      return;
    }
    let node = this.root;
    for (const segment of scan.base.split('/').filter(Boolean)) {
      let child = node.children.get(segment);
      if (!child) node.children.set(segment, (child = newNode<T>()));
      node = child;
    }
    const rest = scan.glob;
    // Braces, brackets and extglobs can span or alter segments; only plain globs are split.
    if (!/[{}()[\]]/.test(rest)) {
      const segments = rest.split('/');
      const literal = segments.filter((segment) => segment && !WILDCARD.test(segment)).at(-1);
      if (literal) {
        push(node.bySegment, literal, entry);
        return;
      }
      const extension = EXTENSION_SEGMENT.exec(segments.at(-1) ?? '');
      if (extension) {
        push(node.byExtension, extension[1]!.slice(extension[1]!.lastIndexOf('.') + 1), entry);
        return;
      }
    }
    node.plain.push(entry);
  }

  get count(): number {
    return this.size;
  }

  /** The payloads of every glob that matches `path`, in insertion order. */
  match(path: string): T[] {
    const stamp = ++this.stamp;
    const found: Entry<T>[] = [];
    const key = this.caseInsensitive ? path.toLowerCase() : path;
    const consider = (entries: Entry<T>[] | undefined): void => {
      if (!entries) return;
      for (const entry of entries) {
        if (entry.stamp === stamp) continue;
        entry.stamp = stamp;
        entry.regex ??= picomatch.makeRe(entry.glob, this.matchOptions);
        if (key === entry.key || entry.regex.test(path)) found.push(entry);
      }
    };
    consider(this.exact.get(key));
    const segments = key.split('/');
    const extension = extensionOf(key);
    let node: TrieNode<T> | undefined = this.root;
    let depth = 0;
    while (node) {
      consider(node.plain);
      if (extension !== undefined && node.byExtension.size) consider(node.byExtension.get(extension));
      if (node.bySegment.size) for (let i = depth; i < segments.length; i++) consider(node.bySegment.get(segments[i]!));
      node = depth < segments.length ? node.children.get(segments[depth]!) : undefined;
      depth++;
    }
    if (found.length > 1) found.sort((a, b) => a.order - b.order);
    return found.map((entry) => entry.payload);
  }
}
