import { RE2JS } from 're2js';
import type { RedactionSummary } from './evidence';
import { GITLEAKS_GLOBAL_ALLOW, GITLEAKS_RULES, type GitleaksRule } from './secretRules.generated';

/** A policy pattern, run by a linear-time engine (re2js): no input makes it backtrack. */
interface LinearPattern {
  readonly source: string;
  /** Every match in `text`, as [start, end) offsets in UTF-16 code units. */
  find(text: string): Iterable<[number, number]>;
}

/**
 * One secret format. `group`, when set, is the capture group whose text is the
 * secret (the rest of the match, such as `password=`, stays readable); when
 * that group did not take part in the match (alternatives), the first later
 * group that did is used.
 */
export interface SecretPattern {
  kind: string;
  pattern: RegExp | LinearPattern;
  group?: number;
  /**
   * Cheap pre-filter: the regex runs only when the text contains one of these
   * literals. Lower-case hints are matched case-insensitively.
   */
  hints?: readonly string[];
  /** Rejects a candidate secret (placeholders, low entropy); true keeps it. `end` is where it ends in `text`, `matchStart` where the whole match starts. */
  accept?: (secret: string, text: string, end: number, matchStart: number) => boolean;
}

export interface SecretMatch {
  kind: string;
  index: number;
  length: number;
}

/** Shannon entropy in bits per character. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function shannonEntropy(text: string): number {
  if (!text) return 0;
  const counts = new Map<string, number>();
  for (const char of text) counts.set(char, (counts.get(char) ?? 0) + 1);
  let entropy = 0;
  const length = [...text].length;
  for (const count of counts.values()) {
    const p = count / length;
    entropy -= p * Math.log2(p);
  }
  return entropy;
}

const PLACEHOLDER =
  /^(?:true|false|null|nil|none|undefined|required|optional|string|redacted|changeme|x+|\*+|\.+|-+)$|^\$\{|^\$[A-Z_]|^<.*>$|^\{\{|^%\(|^\[REDACTED|^[~^<>=]{0,2}v?\d+(?:\.[\dx*]+){1,3}(?:-[\w.]+)?$|^\/(?:bin|dev|etc|home|opt|proc|tmp|usr|var)\/|^0x[0-9a-f]+$/i;

function notPlaceholder(secret: string): boolean {
  return !PLACEHOLDER.test(secret);
}

/** Entropy threshold scales with length: a 16-char string cannot reach 4.5 bits. */
function looksRandom(secret: string): boolean {
  if (!notPlaceholder(secret)) return false;
  const minimum = Math.min(3.5, Math.log2(secret.length) * 0.8);
  return shannonEntropy(secret) >= minimum && /\d/.test(secret) && /[A-Za-z]/.test(secret);
}

/** The identifier a key name found at `start` belongs to: `cache-key`, `designHash`, `sessionId`. */
function keyAround(text: string, start: number): string {
  let from = start;
  while (from > 0 && /[\w.-]/.test(text.charAt(from - 1))) from--;
  let to = start;
  while (to < text.length && /[\w-]/.test(text.charAt(to))) to++;
  return text.slice(from, to);
}

/** Words in a key that make it name something other than a secret: a hash, a cache key, an id. */
const NOT_SECRET_WORDS = new Set([
  'cache',
  'hash',
  'checksum',
  'digest',
  'integrity',
  'etag',
  'uuid',
  'sha',
  'version',
  'commit',
  'design',
]);

/**
 * A key name found inside a longer word only counts at a word start (DB_PASSWORD,
 * dbPassword), not inside one (jsonwebtoken, designHash), and never in a path
 * (/etc/passwd, @octokit/auth-token).
 */
function nameStartsWord(text: string, start: number): boolean {
  const before = text.charAt(start - 1);
  if (before === '/' || before === '\\') return false;
  return !/[A-Za-z0-9]/.test(before) || !/[a-z]/.test(text.charAt(start));
}

function keyDescribesSecret(text: string, start: number): boolean {
  const words = keyWords(keyAround(text, start));
  const last = words[words.length - 1];
  return !(last && DESCRIBING_WORDS.has(last)) && !words.some((word) => NOT_SECRET_WORDS.has(word));
}

/**
 * Rejects what an assignment in source code or a log usually holds that is not
 * a secret: counts ("token: 1234"), calls (`password = readPassword()`),
 * references (`password: process.env.DB_PASSWORD`) and versions.
 */
const CODE_WORDS = new Set(['void', 'new', 'await', 'typeof', 'this', 'function', 'async', 'yield', 'self', 'nil', 'None']);

/**
 * In code, an unquoted identifier after `=` is a variable, not a secret:
 * `token = saveToken;`, `node.questionToken = void 0`, `password: input || fallback`.
 */
function isCodeReference(secret: string, text: string, end: number, matchStart: number): boolean {
  const before = text.charAt(end - secret.length - 1);
  const after = text.slice(end, end + 6);
  // A quoted word in a union type: RequestCredentials = "include" | "omit".
  if (before === '"' || before === "'" || before === '\x60') return /^["'\x60]\s*\|\s*["'\x60]/.test(after);
  if (!/^!?[A-Za-z_$][\w$]*$/.test(secret)) return false;
  if (CODE_WORDS.has(secret) || secret.startsWith('!')) return true;
  if (/^\s*(?:[;,)?[|]|&&|\.[A-Za-z_$])/.test(after)) return true;
  // Prose ("they do not have to be secret: IVs are…") and a type after its name ("token: Token").
  if (!/\d/.test(secret) && /^ [A-Za-z]/.test(after)) return true;
  const key = keyAround(text, matchStart).toLowerCase();
  if (key.includes(secret.toLowerCase())) return true;
  return /[a-z][A-Z]/.test(secret) && !/\d/.test(secret);
}

function plausibleAssignedSecret(secret: string, text: string, end: number, matchStart: number): boolean {
  if (!notPlaceholder(secret) || /^\d{1,12}$/.test(secret)) return false;
  if (text.charCodeAt(end) === 0x28 /* ( */ || isCodeReference(secret, text, end, matchStart)) return false;
  if (/^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$/.test(secret)) return false;
  if (!keyDescribesSecret(text, matchStart)) return false;
  return nameStartsWord(text, matchStart) || looksRandom(secret);
}

function plausibleEntropySecret(secret: string, text: string, _end: number, matchStart: number): boolean {
  return looksRandom(secret) && nameStartsWord(text, matchStart) && keyDescribesSecret(text, matchStart);
}

// A bare value runs to the end of the word; '&' ends it only where a query parameter follows (?password=x&user=y).
const QUOTED_OR_BARE_VALUE = String.raw`(?:"([^"\r\n]{1,300})"|'([^'\r\n]{1,300})'|\x60([^\x60\r\n]{1,300})\x60|((?:[^\s"'\x60,;&<>(){}\[\]]|&(?![A-Za-z_][\w.-]{0,40}=)){3,300}))`;
const SECRET_NAMES = String.raw`(?:password|passwd|passphrase|(?<=[_-])pass(?![a-z])|\bpass(?=\s{0,5}[:?]?=)|pwd|secret|api[_-]?key|apikey|access[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|credentials?|private[_-]?key)`;
const ASSIGNMENT = String.raw`(?:::=|:=|\?=|\+=|=>|:|=)`;
const ENTROPY_NAMES = String.raw`(?:key|auth|signature|sig|salt|session|cookie|cred|private|seed|nonce)`;
const PRIVATE_KEY_LABEL = String.raw`[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?`;
const AUTH_SCHEMES = String.raw`(?:Bearer|Basic|Token|Bot|Digest|Negotiate|AWS4-HMAC-SHA256|Api-?Token|Api-?Key|SSWS|OAuth|Splunk|GenieKey|Key)`;

/** Formats we add on top of the maintained rule set (gitleaks, below): ones it lacks or catches only beside a keyword. */
const OWN_PATTERNS: readonly SecretPattern[] = [
  {
    kind: 'dopplerToken',
    pattern: /\bdp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9._-]{40,}/g,
    hints: ['dp.'],
  },
  { kind: 'telegramBotToken', pattern: /\b\d{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])/g, hints: [':AA'] },
  {
    kind: 'discordWebhook',
    pattern: /\b(?:https?:\/\/)?(?:ptb\.|canary\.)?discord(?:app)?\.com\/api\/webhooks\/\d{5,30}\/[A-Za-z0-9_-]{60,80}/g,
    hints: ['discord'],
  },
  { kind: 'sonarToken', pattern: /\bsq[upa]_[a-f0-9]{40}\b/g, hints: ['squ_', 'sqp_', 'sqa_'] },
  { kind: 'supabaseToken', pattern: /\bsbp_[a-f0-9]{40}\b|\bsb_secret_[A-Za-z0-9_-]{20,}/g, hints: ['sbp_', 'sb_secret_'] },
  { kind: 'figmaToken', pattern: /\bfig[dou]_[A-Za-z0-9_-]{40,}/g, hints: ['figd_', 'figo_', 'figu_'] },
  { kind: 'groqKey', pattern: /\bgsk_[A-Za-z0-9]{48,}\b/g, hints: ['gsk_'] },
  { kind: 'replicateToken', pattern: /\br8_[A-Za-z0-9]{37}\b/g, hints: ['r8_'] },
  { kind: 'xaiKey', pattern: /\bxai-[A-Za-z0-9]{80}\b/g, hints: ['xai-'] },
  {
    kind: 'tailscaleKey',
    pattern: /\btskey-(?:auth|api|client|scim|webhook)-[A-Za-z0-9]{6,}-[A-Za-z0-9]{20,}\b/g,
    hints: ['tskey-'],
  },
  { kind: 'buildkiteToken', pattern: /\bbk(?:ua|ct)_[a-f0-9]{40}\b/g, hints: ['bkua_', 'bkct_'] },
  { kind: 'stripeWebhookSecret', pattern: /\bwhsec_[A-Za-z0-9+/]{32,}/g, hints: ['whsec_'] },
  { kind: 'squareOAuthSecret', pattern: /\bsq0csp-[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g, hints: ['sq0csp-'] },
  // gitleaks has these only beside the provider's name ("airtable", "new relic", "dnkey ="); bare, the prefix is enough.
  {
    kind: 'newRelicKey',
    pattern: /\b(?:NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9_-]{32}|NRJS-[a-f0-9]{19})(?![A-Za-z0-9_-])/g,
    hints: ['NRAK-', 'NRII-', 'NRJS-'],
  },
  { kind: 'airtablePersonalAccessToken', pattern: /\bpat[A-Za-z0-9]{14}\.[a-f0-9]{64}\b/g, hints: ['pat'] },
  { kind: 'definedNetworkingToken', pattern: /\bdnkey-[A-Za-z0-9=_-]{26}-[A-Za-z0-9=_-]{52}(?![A-Za-z0-9=_-])/g, hints: ['dnkey-'] },
  { kind: 'slackAppToken', pattern: /\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{32,}\b/g, hints: ['xapp-'] },
  {
    kind: 'slackWebhook',
    pattern: /\b(?:https?:\/\/)?hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9/_-]{8,}/g,
    hints: ['hooks.slack.com'],
  },
];

/** Built-in formats; earlier entries win when two match the same text. */
const OUR_PATTERNS: readonly SecretPattern[] = [
  {
    kind: 'privateKeyBlock',
    // Without an END marker (a truncated log), the base64 body is still cut.
    // The body may not run into another BEGIN, which keeps many unterminated blocks linear.
    pattern: new RegExp(
      String.raw`-----BEGIN ${PRIVATE_KEY_LABEL}-----(?:(?:(?!-----BEGIN)[\s\S]){0,20000}?-----END ${PRIVATE_KEY_LABEL}-----|[A-Za-z0-9+/=\s\\]{0,20000})`,
      'g',
    ),
    hints: ['PRIVATE KEY'],
  },
  {
    kind: 'awsAccessKeyId',
    pattern: /\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b/g,
    hints: ['AKIA', 'ASIA', 'ABIA', 'ACCA', 'A3T'],
  },
  {
    kind: 'awsSecretAccessKey',
    pattern: /(?:aws)?_?secret_?access_?key["']?\s{0,5}[:=]\s{0,5}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/gi,
    group: 1,
    hints: ['access'],
  },
  {
    kind: 'gcpServiceAccountKeyId',
    pattern: /"private_key_id"\s{0,5}:\s{0,5}"([a-f0-9]{40})"/g,
    group: 1,
    hints: ['private_key_id'],
  },
  { kind: 'gcpApiKey', pattern: /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g, hints: ['AIza'] },
  { kind: 'googleOAuthClientSecret', pattern: /\bGOCSPX-[A-Za-z0-9_-]{28}(?![A-Za-z0-9_-])/g, hints: ['GOCSPX-'] },
  { kind: 'googleOAuthAccessToken', pattern: /\bya29\.[0-9A-Za-z_-]{20,}/g, hints: ['ya29.'] },
  {
    kind: 'azureStorageKey',
    pattern: /\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=([A-Za-z0-9+/%]{20,}(?:={0,2}|%3D){0,2})/gi,
    group: 1,
    hints: ['accountkey', 'sharedaccess'],
  },
  { kind: 'githubToken', pattern: /\bgh[pousr]_[A-Za-z0-9]{36,251}\b/g, hints: ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_'] },
  { kind: 'githubFineGrainedToken', pattern: /\bgithub_pat_[A-Za-z0-9_]{22,255}\b/g, hints: ['github_pat_'] },
  {
    kind: 'gitlabToken',
    pattern: /\bgl(?:pat|dt|rt|ptt|cbt|soat)-[A-Za-z0-9_-]{20,}/g,
    hints: ['glpat-', 'gldt-', 'glrt-', 'glptt-', 'glcbt-', 'glsoat-'],
  },
  { kind: 'slackToken', pattern: /\bxox[abposre]-[A-Za-z0-9-]{10,}/g, hints: ['xox'] },
  { kind: 'npmToken', pattern: /\bnpm_[A-Za-z0-9]{36}\b/g, hints: ['npm_'] },
  { kind: 'pypiToken', pattern: /\bpypi-[A-Za-z0-9_-]{50,}/g, hints: ['pypi-'] },
  { kind: 'dockerHubToken', pattern: /\bdckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}/g, hints: ['dckr_'] },
  { kind: 'stripeKey', pattern: /\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}/g, hints: ['k_live_', 'k_test_'] },
  { kind: 'anthropicKey', pattern: /\bsk-ant-[a-z]{3,8}\d{2}-[A-Za-z0-9_-]{20,}/g, hints: ['sk-ant-'] },
  {
    kind: 'openaiKey',
    pattern: /\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}/g,
    hints: ['sk-'],
    accept: (secret) => /\d/.test(secret) && /[a-z]/.test(secret) && /[A-Z]/.test(secret),
  },
  { kind: 'huggingFaceToken', pattern: /\bhf_[A-Za-z0-9]{34,}\b/g, hints: ['hf_'] },
  { kind: 'sendgridKey', pattern: /\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g, hints: ['SG.'] },
  { kind: 'twilioApiKey', pattern: /\bSK[0-9a-f]{32}\b/g, hints: ['SK'] },
  {
    kind: 'twilioAuthToken',
    pattern: /twilio[A-Za-z0-9_ .-]{0,20}(?:auth|token)[A-Za-z0-9_-]{0,10}["']?\s{0,5}[:=]\s{0,5}["']?([a-f0-9]{32})\b/gi,
    group: 1,
    hints: ['twilio'],
  },
  { kind: 'herokuApiKey', pattern: /\bHRKU-[A-Za-z0-9_-]{20,}/g, hints: ['HRKU-'] },
  {
    kind: 'herokuApiKey',
    pattern: /heroku[A-Za-z0-9_ .-]{0,20}["']?\s{0,5}[:=]\s{0,5}["']?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/gi,
    group: 1,
    hints: ['heroku'],
  },
  { kind: 'shopifyToken', pattern: /\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b/g, hints: ['shpat_', 'shpca_', 'shppa_', 'shpss_'] },
  {
    kind: 'jwt',
    pattern: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g,
    hints: ['eyJ'],
  },
  {
    kind: 'authorizationHeader',
    pattern: new RegExp(String.raw`\b(?:proxy-)?authorization["']?\s{0,5}[:=]\s{0,5}["']?${AUTH_SCHEMES}\s+([^\s"']{6,4000})`, 'gi'),
    group: 1,
    hints: ['authorization'],
  },
  {
    kind: 'bearerToken',
    pattern: /\bBearer\s+([A-Za-z0-9._~+/-]{16,}=*)/gi,
    group: 1,
    hints: ['bearer'],
  },
  {
    kind: 'urlCredentials',
    // Only the password is cut: the user and host stay readable for debugging.
    pattern: /:\/\/[^\s/:@"'<>]{1,200}:([^\s/@"'<>]{1,200})@/g,
    group: 1,
    hints: ['://'],
    accept: notPlaceholder,
  },
  {
    kind: 'secretAssignment',
    pattern: new RegExp(
      String.raw`${SECRET_NAMES}(?:[_-][A-Za-z0-9_-]{0,20})?["'\x60]?\s{0,5}${ASSIGNMENT}\s{0,5}${QUOTED_OR_BARE_VALUE}`,
      'gi',
    ),
    group: 1,
    hints: ['pass', 'pwd', 'secret', 'key', 'token', 'credential'],
    accept: plausibleAssignedSecret,
  },
  {
    // Command-line flags: --token <value>, --db-password value.
    kind: 'secretAssignment',
    pattern: new RegExp(String.raw`--(?:[a-z0-9]+-){0,3}${SECRET_NAMES}(?:-[a-z0-9]+){0,2}\s{1,5}${QUOTED_OR_BARE_VALUE}`, 'gi'),
    group: 1,
    hints: ['--'],
    accept: (secret, text, end) => !secret.startsWith('-') && plausibleAssignedSecret(secret, text, end, end - secret.length),
  },
  {
    // XML elements: <password>value</password>, <add key="x"><apiKey>value</apiKey>.
    kind: 'secretAssignment',
    pattern: new RegExp(String.raw`<((?:[\w.-]{0,40}[_.:-])?${SECRET_NAMES}[\w.-]{0,20})(?:\s[^<>]{0,200})?>([^<\r\n]{1,300})</\1>`, 'gi'),
    group: 2,
    hints: ['pass', 'pwd', 'secret', 'key', 'token', 'credential'],
    accept: (secret) => notPlaceholder(secret.trim()),
  },
  {
    // Setters: setProperty("db.password", "value"), headers.set('X-Api-Key', 'value').
    kind: 'secretAssignment',
    pattern: new RegExp(
      String.raw`\b(?:set|put|add|append|with)[A-Za-z]{0,20}\(\s{0,5}["'\x60][\w.-]{0,40}?${SECRET_NAMES}[\w.-]{0,20}["'\x60]\s{0,5},\s{0,5}(?:"([^"\r\n]{1,300})"|'([^'\r\n]{1,300})'|\x60([^\x60\r\n]{1,300})\x60)`,
      'gi',
    ),
    group: 1,
    hints: ['pass', 'pwd', 'secret', 'key', 'token', 'credential'],
    accept: (secret) => notPlaceholder(secret),
  },
  {
    kind: 'highEntropySecret',
    pattern: new RegExp(
      String.raw`${ENTROPY_NAMES}[A-Za-z0-9_-]{0,20}["'\x60]?\s{0,5}${ASSIGNMENT}\s{0,5}["'\x60]?([A-Za-z0-9+/=_.%-]{16,400})`,
      'gi',
    ),
    group: 1,
    hints: ['key', 'auth', 'sig', 'salt', 'session', 'cookie', 'cred', 'private', 'seed', 'nonce'],
    accept: plausibleEntropySecret,
  },
];

const GLOBAL_ALLOW = GITLEAKS_GLOBAL_ALLOW.allow.map((source) => new RegExp(source));

/** gitleaks' checks after a match: the rule's entropy floor, its allow lists, the global one. */
function gitleaksAccept(rule: GitleaksRule): SecretPattern['accept'] {
  const allow = (rule.allow ?? []).map((source) => new RegExp(source));
  const allowLine = (rule.allowLine ?? []).map((source) => new RegExp(source));
  const stopwords = [...GITLEAKS_GLOBAL_ALLOW.stopwords, ...(rule.stopwords ?? [])];
  return (secret, text, end) => {
    if (rule.entropy !== undefined && shannonEntropy(secret) < rule.entropy) return false;
    if (GLOBAL_ALLOW.some((regex) => regex.test(secret)) || allow.some((regex) => regex.test(secret))) return false;
    const lower = secret.toLowerCase();
    if (stopwords.some((word) => lower.includes(word))) return false;
    if (allowLine.length === 0) return true;
    const lineStart = text.lastIndexOf('\n', end - secret.length - 1) + 1;
    const lineEnd = text.indexOf('\n', end);
    const line = text.slice(lineStart, lineEnd < 0 ? text.length : lineEnd);
    return !allowLine.some((regex) => regex.test(line));
  };
}

/** `github-fine-grained-pat` → `githubFineGrainedPat`. */
function kindOf(id: string): string {
  return id.replace(/-([a-z0-9])/g, (_, char: string) => char.toUpperCase());
}

const GITLEAKS_PATTERNS: readonly SecretPattern[] = GITLEAKS_RULES.map((rule) => ({
  kind: kindOf(rule.id),
  pattern: new RegExp(rule.regex, 'g'),
  ...(rule.group > 0 ? { group: rule.group } : {}),
  ...(rule.keywords.length ? { hints: rule.keywords.map((keyword) => keyword.toLowerCase()) } : {}),
  accept: gitleaksAccept(rule),
}));

/**
 * Built-in formats: ours first (tuned for logs and source code), then our
 * additions, then gitleaks' rule set (src/core/secretRules.generated.ts).
 * Earlier entries win when two match the same text.
 */
export const BUILTIN_SECRET_PATTERNS: readonly SecretPattern[] = Object.freeze([...OUR_PATTERNS, ...OWN_PATTERNS, ...GITLEAKS_PATTERNS]);

const MAX_POLICY_PATTERN_LENGTH = 2000;

/** Compiles a policy pattern for re2js, which runs in time linear in the text whatever the pattern. */
function linearPattern(source: string): LinearPattern {
  const regex = RE2JS.compile(source);
  return {
    source,
    *find(text: string): Iterable<[number, number]> {
      const matcher = regex.matcher(text);
      while (matcher.find()) {
        const start = matcher.start();
        const end = matcher.end();
        if (end > start) yield [start, end];
      }
    },
  };
}

/** Text a secret pattern must leave mostly alone: random characters, prose, code and a log line. */
const ORDINARY_SAMPLES: readonly string[] = (() => {
  let state = 0x2545f491;
  const random = (length: number) => {
    let out = '';
    for (let i = 0; i < length; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      out += String.fromCharCode(32 + ((state >>> 8) % 95));
    }
    return out;
  };
  return [
    random(64),
    random(64),
    'The quick brown fox jumps over the lazy dog while the build runs its tests.',
    'const result = await fetchItems(options.limit, { retries: 3 });',
    '2026-11-21T10:00:00.123Z INFO  [worker-3] GET /api/items 200 34ms',
  ];
})();

/** The share of `text` a pattern's matches cover. */
function coverage(pattern: LinearPattern, text: string): number {
  let covered = 0;
  for (const [start, end] of pattern.find(text)) covered += end - start;
  return covered / text.length;
}

/**
 * Compiles policy-supplied patterns. Returns the built-in patterns followed by
 * the valid extras, so the result alone is a complete set; a bad pattern
 * yields an error message naming it, never an exception. Policy patterns run
 * in re2js (RE2's syntax, linear time), so none can hang the editor however it
 * is written; one that matches the empty string or ordinary text is refused.
 */
export function compileSecretPatterns(extra: readonly { name: string; pattern: string }[]): {
  patterns: SecretPattern[];
  errors: string[];
} {
  const patterns: SecretPattern[] = [...BUILTIN_SECRET_PATTERNS];
  const errors: string[] = [];
  for (const [position, entry] of extra.entries()) {
    const name = typeof entry?.name === 'string' && entry.name.trim() ? entry.name.trim() : `#${position + 1}`;
    const source = entry?.pattern;
    if (typeof source !== 'string' || source.length === 0) {
      errors.push(`Secret pattern "${name}" is empty: give a regular expression (RE2 syntax), for example "acme_[a-z0-9]{32}".`);
      continue;
    }
    if (source.length > MAX_POLICY_PATTERN_LENGTH) {
      errors.push(`Secret pattern "${name}" is ${source.length} characters long; keep it under ${MAX_POLICY_PATTERN_LENGTH}.`);
      continue;
    }
    let pattern: LinearPattern;
    try {
      pattern = linearPattern(source);
    } catch (error) {
      const reason = (error as Error).message.replace(/^error parsing regexp: /, '');
      const hint = /Perl syntax|backreference|\\[1-9]/.test(reason)
        ? ' Lookarounds ((?=, (?!, (?<=) and backreferences (\\1) are not supported: match the secret itself, for example "acme_[a-z0-9]{32}".'
        : " Fix it in the policy's redaction patterns (RE2 syntax, as in gitleaks; (?i) at the start makes it case-insensitive).";
      errors.push(`Secret pattern "${name}" is not a valid regular expression (${reason}).${hint}`);
      continue;
    }
    if (RE2JS.compile(`^(?:${source})$`).matches('')) {
      errors.push(
        `Secret pattern "${name}" matches the empty string, so it would match everywhere; make it require at least one character, for example "acme_[a-z0-9]+" instead of "acme_[a-z0-9]*".`,
      );
      continue;
    }
    const sample = ORDINARY_SAMPLES.find((text) => coverage(pattern, text) >= 0.5);
    if (sample !== undefined) {
      errors.push(
        `Secret pattern "${name}" matches ordinary text (it covered ${Math.round(coverage(pattern, sample) * 100)}% of "${sample.slice(0, 40)}…"), so it would redact nearly everything; anchor it on what only the secret has, such as a fixed prefix and length: "acme_[a-z0-9]{32}".`,
      );
      continue;
    }
    patterns.push({ kind: `policy:${name}`, pattern });
  }
  return { patterns, errors };
}

interface Candidate {
  start: number;
  end: number;
  kind: string;
  order: number;
}

const globalCache = new WeakMap<RegExp, RegExp>();

/** A private global copy (with group indices when needed), so callers' lastIndex is never touched. */
function scanner(pattern: SecretPattern & { pattern: RegExp }): RegExp {
  let regex = globalCache.get(pattern.pattern);
  if (!regex) {
    let flags = pattern.pattern.flags.replace(/[gyd]/g, '') + 'g';
    if (pattern.group !== undefined) flags += 'd';
    regex = new RegExp(pattern.pattern.source, flags);
    globalCache.set(pattern.pattern, regex);
  }
  regex.lastIndex = 0;
  return regex;
}

/** A pattern ready to scan with: its hints split once by how they are looked for, its private global regex. */
interface PlannedPattern {
  pattern: SecretPattern;
  order: number;
  /** Lower-case hints, looked for in the lower-cased text; the others as written. Both empty: always scanned. */
  lowerHints: readonly string[];
  exactHints: readonly string[];
  regex?: RegExp;
}

const planned = new WeakMap<SecretPattern, Omit<PlannedPattern, 'order'>>();
const plans = new WeakMap<readonly SecretPattern[], PlannedPattern[]>();

/**
 * The patterns in order, each once, prepared for scanning (cached by list and by pattern): findSecrets runs on every
 * string of every audit event, where working out each hint's case again for hundreds of patterns cost more than the
 * scan itself.
 */
function planFor(patterns: readonly SecretPattern[]): PlannedPattern[] {
  let plan = plans.get(patterns);
  if (plan) return plan;
  plan = [];
  const seen = new Set<SecretPattern>();
  patterns.forEach((pattern, order) => {
    if (seen.has(pattern)) return;
    seen.add(pattern);
    let prepared = planned.get(pattern);
    if (!prepared) {
      const hints = pattern.hints ?? [];
      const source = pattern.pattern;
      prepared = {
        pattern,
        lowerHints: hints.filter((hint) => hint === hint.toLowerCase()),
        exactHints: hints.filter((hint) => hint !== hint.toLowerCase()),
        ...(source instanceof RegExp ? { regex: scanner({ ...pattern, pattern: source }) } : {}),
      };
      planned.set(pattern, prepared);
    }
    plan.push({ ...prepared, order });
  });
  plans.set(patterns, plan);
  return plan;
}

/** Every secret in `text`: non-overlapping, sorted by position; earlier patterns win ties. */
export function findSecrets(text: string, patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS): SecretMatch[] {
  if (!text) return [];
  let lowered: string | undefined;
  const candidates: Candidate[] = [];
  for (const { pattern, order, lowerHints, exactHints, regex } of planFor(patterns)) {
    if (lowerHints.length > 0 || exactHints.length > 0) {
      let present = false;
      for (const hint of exactHints) if ((present = text.includes(hint))) break;
      if (!present) {
        lowered ??= text.toLowerCase();
        for (const hint of lowerHints) if ((present = lowered.includes(hint))) break;
      }
      if (!present) continue;
    }
    if (!regex) {
      for (const [start, end] of (pattern.pattern as Exclude<SecretPattern['pattern'], RegExp>).find(text)) {
        if (pattern.accept && !pattern.accept(text.slice(start, end), text, end, start)) continue;
        candidates.push({ start, end, kind: pattern.kind, order });
      }
      continue;
    }
    regex.lastIndex = 0;
    let match: RegExpExecArray | null;
    while ((match = regex.exec(text)) !== null) {
      if (match[0].length === 0) {
        regex.lastIndex++;
        continue;
      }
      let start = match.index;
      let end = start + match[0].length;
      if (pattern.group !== undefined) {
        const indices = match.indices;
        let group = pattern.group;
        while (group < match.length && match[group] === undefined) group++;
        const span = indices?.[group];
        if (!span || span[1] === span[0]) continue;
        [start, end] = span;
      }
      if (pattern.accept && !pattern.accept(text.slice(start, end), text, end, match.index)) continue;
      candidates.push({ start, end, kind: pattern.kind, order });
    }
  }
  candidates.sort((a, b) => a.start - b.start || a.order - b.order || b.end - a.end);
  const result: SecretMatch[] = [];
  let reached = 0;
  for (const candidate of candidates) {
    if (candidate.start < reached) {
      // An overlapping longer secret extends the cut, so no tail of it survives.
      const last = result[result.length - 1];
      if (last && candidate.end > reached) {
        last.length = candidate.end - last.index;
        reached = candidate.end;
      }
      continue;
    }
    result.push({ kind: candidate.kind, index: candidate.start, length: candidate.end - candidate.start });
    reached = candidate.end;
  }
  return result;
}

function emptySummary(): RedactionSummary {
  return { total: 0, byKind: {} };
}

export function mergeSummaries(...summaries: RedactionSummary[]): RedactionSummary {
  const merged = emptySummary();
  for (const summary of summaries) {
    merged.total += summary.total;
    for (const [kind, count] of Object.entries(summary.byKind)) merged.byKind[kind] = (merged.byKind[kind] ?? 0) + count;
  }
  return merged;
}

function redactionMarker(kind: string): string {
  return `[REDACTED:${kind}]`;
}

/** Replaces every secret with `[REDACTED:kind]` and counts the replacements. */
export function redactText(
  text: string,
  patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS,
): { text: string; summary: RedactionSummary } {
  const summary = emptySummary();
  const matches = findSecrets(text, patterns);
  if (matches.length === 0) return { text, summary };
  const parts: string[] = [];
  let position = 0;
  for (const match of matches) {
    parts.push(text.slice(position, match.index), redactionMarker(match.kind));
    position = match.index + match.length;
    summary.total++;
    summary.byKind[match.kind] = (summary.byKind[match.kind] ?? 0) + 1;
  }
  parts.push(text.slice(position));
  return { text: parts.join(''), summary };
}

const BLOCK_BEGIN = new RegExp(String.raw`-----BEGIN ${PRIVATE_KEY_LABEL}-----`);
const BLOCK_END = new RegExp(String.raw`-----END ${PRIVATE_KEY_LABEL}-----`);

/** Redacts output that arrives line by line; see createStreamRedactor. */
export interface StreamRedactor {
  /** One line in (without its newline); the lines that may be shown or stored now, redacted. */
  push(line: string): string[];
  /** The end of the stream: what is still held, redacted. */
  flush(): string[];
  /** What was redacted so far. */
  readonly summary: RedactionSummary;
}

/**
 * A line-by-line redactor that also cuts multi-line secrets: from a line with
 * `-----BEGIN … PRIVATE KEY-----` it holds the lines back until the END line
 * (or `maxLines` lines or `maxChars` characters, a key without an end), then
 * redacts them as one block, so no line of the key's body is ever passed on.
 */
export function createStreamRedactor(
  patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS,
  limits: { maxLines?: number; maxChars?: number } = {},
): StreamRedactor {
  const maxLines = limits.maxLines ?? 200;
  const maxChars = limits.maxChars ?? 64 * 1024;
  const summary = emptySummary();
  let held: string[] | undefined;
  let heldChars = 0;
  const redact = (text: string): string => {
    const result = redactText(text, patterns);
    summary.total += result.summary.total;
    for (const [kind, count] of Object.entries(result.summary.byKind)) summary.byKind[kind] = (summary.byKind[kind] ?? 0) + count;
    return result.text;
  };
  const release = (ended: boolean): string[] => {
    const lines = held ?? [];
    held = undefined;
    heldChars = 0;
    if (ended) return redact(lines.join('\n')).split('\n');
    // No END line in reach: the block's first line is kept up to its BEGIN marker, the rest is cut whole.
    const first = lines[0] ?? '';
    const begin = BLOCK_BEGIN.exec(first)?.index ?? 0;
    summary.total++;
    summary.byKind.privateKeyBlock = (summary.byKind.privateKeyBlock ?? 0) + 1;
    return [`${redact(first.slice(0, begin))}${redactionMarker('privateKeyBlock')} (${lines.length} lines)`];
  };
  // After a block cut at the cap, what still looks like its body (base64, headers, the END line) is dropped too.
  let draining = false;
  return {
    summary,
    push(line: string): string[] {
      if (draining) {
        if (BLOCK_END.test(line)) {
          draining = false;
          return [];
        }
        if (/^[A-Za-z0-9+/=\s\\]*$|^[A-Za-z-]+: /.test(line)) return [];
        draining = false;
      }
      if (held) {
        held.push(line);
        heldChars += line.length + 1;
        if (BLOCK_END.test(line)) return release(true);
        if (held.length < maxLines && heldChars < maxChars) return [];
        draining = true;
        return release(false);
      }
      const begin = BLOCK_BEGIN.exec(line);
      if (begin && !BLOCK_END.test(line.slice(begin.index))) {
        held = [line];
        heldChars = line.length;
        return [];
      }
      return [redact(line)];
    },
    flush(): string[] {
      return held ? release(false) : [];
    },
  };
}

const SENSITIVE_WORDS = new Set([
  'password',
  'passwd',
  'passphrase',
  'secret',
  'secrets',
  'token',
  'authorization',
  'credential',
  'credentials',
  'cookie',
  'apikey',
  'privatekey',
]);
const SENSITIVE_PAIRS = new Set(['api key', 'private key', 'access key', 'secret key', 'signing key', 'session key', 'encryption key']);
/** Last words that make a key name describe a secret rather than hold one (secretRef, tokenCount, passwordFile). */
const DESCRIBING_WORDS = new Set([
  'ref',
  'name',
  'id',
  'ids',
  'count',
  'kind',
  'type',
  'length',
  'hint',
  'expiry',
  'expires',
  'url',
  'file',
  'path',
  'env',
  'source',
  'present',
  'set',
  'required',
]);

function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/** Keys whose string values are secrets whatever they look like (apiKey, GITHUB_TOKEN, client_secret, SECRET_VALUE...). */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function isSensitiveKey(key: string): boolean {
  const words = keyWords(key);
  if (words.length === 0 || DESCRIBING_WORDS.has(words[words.length - 1]!)) return false;
  for (let i = 0; i < words.length; i++) {
    if (SENSITIVE_WORDS.has(words[i]!)) return true;
    if (i > 0 && SENSITIVE_PAIRS.has(`${words[i - 1]} ${words[i]}`)) return true;
  }
  return false;
}

const SENSITIVE_KEY_KIND = 'sensitiveField';

function isPlainContainer(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Redacts a JSON value deeply: secrets inside any string, and every string
 * under a key named like a secret (password, token, apiKey, authorization...).
 * Returns a copy; the input is not changed.
 */
export function redactValue<T>(
  value: T,
  patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS,
): { value: T; summary: RedactionSummary } {
  const summary = emptySummary();
  const count = (kind: string, times = 1) => {
    summary.total += times;
    summary.byKind[kind] = (summary.byKind[kind] ?? 0) + times;
  };
  const text = (input: string): string => {
    const result = redactText(input, patterns);
    if (result.summary.total > 0) for (const [kind, times] of Object.entries(result.summary.byKind)) count(kind, times);
    return result.text;
  };
  const walk = (node: unknown, sensitive: boolean, depth: number): unknown => {
    if (depth > 200) throw new Error('redactValue: the value is nested more than 200 levels deep (a cycle?); pass plain JSON data.');
    if (typeof node === 'string') {
      if (sensitive && node.length > 0 && !node.startsWith('[REDACTED:')) {
        count(SENSITIVE_KEY_KIND);
        return redactionMarker(SENSITIVE_KEY_KIND);
      }
      return text(node);
    }
    if (Array.isArray(node)) return node.map((item) => walk(item, sensitive, depth + 1));
    if (isPlainContainer(node)) {
      const copy: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(node)) {
        copy[text(key)] = walk(child, sensitive || isSensitiveKey(key), depth + 1);
      }
      return copy;
    }
    return node;
  };
  return { value: walk(value, false, 0) as T, summary };
}
