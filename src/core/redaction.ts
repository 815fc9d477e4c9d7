import type { RedactionSummary } from './evidence';

/**
 * One secret format. `group`, when set, is the capture group whose text is the
 * secret (the rest of the match, such as `password=`, stays readable); when
 * that group did not take part in the match (alternatives), the first later
 * group that did is used.
 */
export interface SecretPattern {
  kind: string;
  pattern: RegExp;
  group?: number;
  /**
   * Cheap pre-filter: the regex runs only when the text contains one of these
   * literals. Lower-case hints are matched case-insensitively.
   */
  hints?: readonly string[];
  /** Rejects a candidate secret (placeholders, low entropy); true keeps it. `end` is where it ends in `text`. */
  accept?: (secret: string, text: string, end: number) => boolean;
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
  /^(?:true|false|null|nil|none|undefined|required|optional|string|redacted|changeme|x+|\*+|\.+|-+)$|^\$\{|^\$[A-Z_]|^<.*>$|^\{\{|^%\(|^\[REDACTED/i;

function notPlaceholder(secret: string): boolean {
  return !PLACEHOLDER.test(secret);
}

/** Entropy threshold scales with length: a 16-char string cannot reach 4.5 bits. */
function looksRandom(secret: string): boolean {
  if (!notPlaceholder(secret)) return false;
  const minimum = Math.min(3.5, Math.log2(secret.length) * 0.8);
  return shannonEntropy(secret) >= minimum && /\d/.test(secret) && /[A-Za-z]/.test(secret);
}

/**
 * Rejects what an assignment in source code or a log usually holds that is not
 * a secret: counts ("token: 1234"), calls (`password = readPassword()`) and
 * references (`password: process.env.DB_PASSWORD`).
 */
function plausibleAssignedSecret(secret: string, text: string, end: number): boolean {
  if (!notPlaceholder(secret) || /^\d{1,12}$/.test(secret)) return false;
  if (text.charCodeAt(end) === 0x28 /* ( */) return false;
  return !/^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$/.test(secret);
}

const QUOTED_OR_BARE_VALUE = String.raw`(?:"([^"\r\n]{1,300})"|'([^'\r\n]{1,300})'|([^\s"'\x60,;&<>(){}\[\]]{3,300}))`;
const SECRET_NAMES = String.raw`(?:password|passwd|passphrase|pwd|secret|api[_-]?key|apikey|access[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|credentials?|private[_-]?key)`;
const ENTROPY_NAMES = String.raw`(?:key|auth|signature|sig|salt|session|cookie|cred|private|seed|nonce)`;
const PRIVATE_KEY_LABEL = String.raw`[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?`;

/** Built-in formats; earlier entries win when two match the same text. */
export const BUILTIN_SECRET_PATTERNS: readonly SecretPattern[] = Object.freeze([
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
  {
    kind: 'slackWebhook',
    pattern: /https:\/\/hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9/_-]{8,}/g,
    hints: ['hooks.slack.com'],
  },
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
    pattern:
      /\b(?:proxy-)?authorization["']?\s{0,5}[:=]\s{0,5}["']?(?:Bearer|Basic|Token|Bot|Digest|Negotiate|AWS4-HMAC-SHA256)\s+([^\s"']{6,4000})/gi,
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
      String.raw`${SECRET_NAMES}(?:[_-][A-Za-z0-9_-]{0,20})?["']?\s{0,5}(?::|=|:=|=>)\s{0,5}${QUOTED_OR_BARE_VALUE}`,
      'gi',
    ),
    group: 1,
    hints: ['pass', 'pwd', 'secret', 'key', 'token', 'credential'],
    accept: plausibleAssignedSecret,
  },
  {
    kind: 'highEntropySecret',
    pattern: new RegExp(
      String.raw`${ENTROPY_NAMES}[A-Za-z0-9_-]{0,20}["']?\s{0,5}(?::|=|:=|=>)\s{0,5}["']?([A-Za-z0-9+/=_.%-]{16,400})`,
      'gi',
    ),
    group: 1,
    hints: ['key', 'auth', 'sig', 'salt', 'session', 'cookie', 'cred', 'private', 'seed', 'nonce'],
    accept: looksRandom,
  },
]);

const MAX_POLICY_PATTERN_LENGTH = 2000;

/**
 * Compiles policy-supplied patterns. Returns the built-in patterns followed by
 * the valid extras, so the result alone is a complete set; a bad pattern
 * yields an error message naming it, never an exception.
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
      errors.push(`Secret pattern "${name}" is empty: give a regular expression (JavaScript syntax), for example "acme_[a-z0-9]{32}".`);
      continue;
    }
    if (source.length > MAX_POLICY_PATTERN_LENGTH) {
      errors.push(`Secret pattern "${name}" is ${source.length} characters long; keep it under ${MAX_POLICY_PATTERN_LENGTH}.`);
      continue;
    }
    // Patterns copied from gitleaks and similar tools often start with (?i).
    const caseInsensitive = source.startsWith('(?i)');
    const body = caseInsensitive ? source.slice(4) : source;
    let regex: RegExp;
    try {
      regex = new RegExp(body, caseInsensitive ? 'gi' : 'g');
    } catch (error) {
      errors.push(
        `Secret pattern "${name}" is not a valid regular expression (${(error as Error).message}); fix it in the policy's redaction patterns.`,
      );
      continue;
    }
    if (new RegExp(`^(?:${body})$`, caseInsensitive ? 'i' : '').test('')) {
      errors.push(
        `Secret pattern "${name}" matches the empty string, so it would match everywhere; make it require at least one character.`,
      );
      continue;
    }
    patterns.push({ kind: `policy:${name}`, pattern: regex });
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
function scanner(pattern: SecretPattern): RegExp {
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

function hintsPresent(pattern: SecretPattern, text: string, lower: () => string): boolean {
  if (!pattern.hints || pattern.hints.length === 0) return true;
  for (const hint of pattern.hints) {
    const haystack = hint === hint.toLowerCase() ? lower() : text;
    if (haystack.includes(hint)) return true;
  }
  return false;
}

/** Every secret in `text`: non-overlapping, sorted by position; earlier patterns win ties. */
export function findSecrets(text: string, patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS): SecretMatch[] {
  if (!text) return [];
  let lowered: string | undefined;
  const lower = () => (lowered ??= text.toLowerCase());
  const candidates: Candidate[] = [];
  const seen = new Set<SecretPattern>();
  patterns.forEach((pattern, order) => {
    if (seen.has(pattern)) return;
    seen.add(pattern);
    if (!hintsPresent(pattern, text, lower)) return;
    const regex = scanner(pattern);
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
      if (pattern.accept && !pattern.accept(text.slice(start, end), text, end)) continue;
      candidates.push({ start, end, kind: pattern.kind, order });
    }
  });
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

export function emptySummary(): RedactionSummary {
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
