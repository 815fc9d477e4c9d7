// Transcribes gitleaks' rule set (config/gitleaks.toml, MIT) into
// src/core/secretRules.generated.ts: the rules as data (JavaScript regex
// sources, keywords, entropy thresholds, allow lists), for src/core/redaction.ts.
//
//   node scripts/generate-secret-rules.mjs <path to gitleaks.toml> <gitleaks commit>
//
// gitleaks writes its rules in Go's RE2 syntax. JavaScript (before V8's regexp
// modifiers, which Node 20 lacks) has no inline (?i), (?i:…), (?-i:…) or (?s:…),
// so the case-insensitive parts are spelled out ([aA], [a-zA-Z]) and the whole
// rule is compiled without flags. Rules that need a file path (gitleaks scans
// repositories; we redact text) and the rules our own built-ins cover better are
// left out (SKIPPED below, with the reason).
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'smol-toml';

const [tomlPath, commit] = process.argv.slice(2);
if (!tomlPath || !commit) {
  console.error('usage: node scripts/generate-secret-rules.mjs <gitleaks.toml> <gitleaks commit>');
  process.exit(2);
}

const SKIPPED = {
  'generic-api-key': 'our own secretAssignment and highEntropySecret rules, tuned for logs and source code',
  'private-key': 'our own privateKeyBlock rule, also used by the streaming redactor',
  'pkcs12-file': 'matches file paths only',
};

const POSIX = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  digit: '0-9',
  lower: 'a-z',
  upper: 'A-Z',
  xdigit: '0-9A-Fa-f',
  word: '\\w',
  space: '\\s',
};

const isLetter = (c) => /[A-Za-z]/.test(c);
const swap = (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase());

/** The items of a character class body with their case-folded twins. */
function foldClass(body) {
  const extra = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '\\') {
      i += body[i + 1] === 'x' ? 3 : 1;
      continue;
    }
    if (body[i + 1] === '-' && i + 2 < body.length && body[i + 2] !== '\\') {
      const to = body[i + 2];
      if (/[a-z]/.test(c) && /[a-z]/.test(to)) extra.push(`${c.toUpperCase()}-${to.toUpperCase()}`);
      else if (/[A-Z]/.test(c) && /[A-Z]/.test(to)) extra.push(`${c.toLowerCase()}-${to.toLowerCase()}`);
      i += 2;
      continue;
    }
    if (isLetter(c)) extra.push(swap(c));
  }
  // Before the rest, so a trailing '-' stays a literal.
  return body.startsWith('^') ? `^${extra.join('')}${body.slice(1)}` : extra.join('') + body;
}

/** Go RE2 syntax → a JavaScript regex source without inline flags. */
export function goToJs(source) {
  let out = '';
  const stack = [{ ci: false, dotAll: false }];
  const top = () => stack[stack.length - 1];
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      const next = source[i + 1];
      if (next === 'z') out += '$';
      else if (next === 'A') out += '^';
      else if (next === 'x') {
        const hex = source[i + 2] === '{' ? source.slice(i + 3, source.indexOf('}', i)) : source.slice(i + 2, i + 4);
        out += `\\x${hex.padStart(2, '0')}`;
        i += source[i + 2] === '{' ? hex.length + 2 : 2;
      } else if (next === 'p' || next === 'P' || next === 'Q' || next === 'E') throw new Error(`unsupported escape \\${next}`);
      else out += `\\${next}`;
      i++;
      continue;
    }
    if (c === '[') {
      let j = i + 1;
      if (source[j] === '^') j++;
      if (source[j] === ']') j++;
      while (j < source.length && source[j] !== ']') {
        if (source[j] === '\\') j += 2;
        else if (source[j] === '[' && source[j + 1] === ':') j = source.indexOf(':]', j) + 2;
        else j++;
      }
      let body = source.slice(i + 1, j).replace(/\[:([a-z]+):\]/g, (_, name) => {
        if (!POSIX[name]) throw new Error(`unsupported class [:${name}:]`);
        return POSIX[name];
      });
      if (body.startsWith(']')) body = `\\${body}`;
      body = body.replace(/(^\^?)\[/, '$1\\[');
      out += `[${top().ci ? foldClass(body) : body}]`;
      i = j;
      continue;
    }
    if (c === '(') {
      const flags = /^\(\?([a-z-]+)(:|\))/.exec(source.slice(i));
      if (flags) {
        const state = { ...top() };
        let on = true;
        for (const flag of flags[1]) {
          if (flag === '-') on = false;
          else if (flag === 'i') state.ci = on;
          else if (flag === 's') state.dotAll = on;
          else throw new Error(`unsupported flag ${flag}`);
        }
        i += flags[0].length - 1;
        if (flags[2] === ')') stack[stack.length - 1] = state;
        else {
          stack.push(state);
          out += '(?:';
        }
        continue;
      }
      const named = /^\(\?P?<([A-Za-z_]\w*)>/.exec(source.slice(i));
      stack.push({ ...top() });
      if (named) {
        // Names are not used; a named group would otherwise count as the secret's group.
        out += '(?:';
        i += named[0].length - 1;
      } else if (source.startsWith('(?:', i)) {
        out += '(?:';
        i += 2;
      } else out += '(';
      continue;
    }
    if (c === ')') {
      stack.pop();
      out += ')';
      continue;
    }
    if (c === '.' && top().dotAll) {
      out += '[\\s\\S]';
      continue;
    }
    if (c === '{') {
      const quantifier = /^\{\d*(,\d*)?\}/.exec(source.slice(i));
      if (quantifier) {
        out += quantifier[0];
        i += quantifier[0].length - 1;
        continue;
      }
    }
    out += top().ci && isLetter(c) ? `[${c}${swap(c)}]` : c;
  }
  return out;
}

/** gitleaks' keyword rules start with `[\w.-]{0,50}?` only to report the whole assignment; the secret group does not need it. */
/** Rules whose first group is a repeated piece, not the secret: the whole match is cut. */
const WHOLE_MATCH = new Set(['microsoft-teams-webhook']);

/** The group that holds the secret, as gitleaks picks it: secretGroup, else the first group, else (0) the whole match. */
function secretGroup(rule, source) {
  if (rule.secretGroup) return rule.secretGroup;
  if (WHOLE_MATCH.has(rule.id)) return 0;
  return new RegExp(`${source}|`).exec('').length > 1 ? 1 : 0;
}

const LEADING_CONTEXT = '(?i)[\\w.-]{0,50}?';

function convert(regex) {
  let source = regex;
  if (source.startsWith(LEADING_CONTEXT)) source = `(?i)${source.slice(LEADING_CONTEXT.length)}`;
  else if (source.startsWith('[\\w.-]{0,50}?(?i:[\\w.-]{0,50}?')) source = `(?i:${source.slice('[\\w.-]{0,50}?(?i:[\\w.-]{0,50}?'.length)}`;
  const js = goToJs(source);
  new RegExp(js, 'gd');
  return js;
}

const config = parse(readFileSync(tomlPath, 'utf8'));
const rules = [];
const skipped = [];
for (const rule of config.rules) {
  if (SKIPPED[rule.id]) {
    skipped.push(`${rule.id}: ${SKIPPED[rule.id]}`);
    continue;
  }
  if (!rule.regex || rule.path) {
    skipped.push(`${rule.id}: needs a file path`);
    continue;
  }
  let source;
  try {
    source = convert(rule.regex);
  } catch (error) {
    skipped.push(`${rule.id}: ${error.message}`);
    continue;
  }
  const allow = { regexes: [], lineRegexes: [], stopwords: [] };
  for (const list of rule.allowlists ?? []) {
    if (list.paths && list.condition === 'AND') continue;
    const target = list.regexTarget === 'line' || list.regexTarget === 'match' ? allow.lineRegexes : allow.regexes;
    for (const regex of list.regexes ?? []) {
      try {
        target.push(goToJs(regex));
      } catch (error) {
        console.warn(`${rule.id}: allow-list regex left out (${error.message})`);
      }
    }
    allow.stopwords.push(...(list.stopwords ?? []));
  }
  rules.push({
    id: rule.id,
    regex: source,
    group: secretGroup(rule, source),
    ...(rule.entropy ? { entropy: rule.entropy } : {}),
    keywords: rule.keywords ?? [],
    ...(allow.regexes.length ? { allow: allow.regexes } : {}),
    ...(allow.lineRegexes.length ? { allowLine: allow.lineRegexes } : {}),
    ...(allow.stopwords.length ? { stopwords: allow.stopwords } : {}),
  });
}

const global = {
  allow: (config.allowlist?.regexes ?? []).map(goToJs),
  stopwords: config.allowlist?.stopwords ?? [],
};

const text = `// Generated by scripts/generate-secret-rules.mjs from gitleaks' config/gitleaks.toml
// (https://github.com/gitleaks/gitleaks, commit ${commit}). Do not edit by hand: run the script again.
//
// The rules are gitleaks', under its licence:
// MIT License. Copyright (c) 2019 Zachary Rice. Permission is hereby granted, free of charge, to any
// person obtaining a copy of this software and associated documentation files (the "Software"), to deal
// in the Software without restriction, including without limitation the rights to use, copy, modify,
// merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to
// whom the Software is furnished to do so, subject to the following conditions: The above copyright
// notice and this permission notice shall be included in all copies or substantial portions of the
// Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
//
// Left out: ${skipped.join('; ')}.

/** One gitleaks rule: a JavaScript regex source (no flags), the secret's group, an entropy floor, keywords that must appear. */
export interface GitleaksRule {
  id: string;
  regex: string;
  /** The capture group that holds the secret; 0: the whole match. */
  group: number;
  entropy?: number;
  keywords: readonly string[];
  /** The secret is not one when one of these matches it. */
  allow?: readonly string[];
  /** …or when one of these matches its line. */
  allowLine?: readonly string[];
  /** …or when it contains one of these. */
  stopwords?: readonly string[];
}

export const GITLEAKS_GLOBAL_ALLOW: { allow: readonly string[]; stopwords: readonly string[] } = ${JSON.stringify(global)};

export const GITLEAKS_RULES: readonly GitleaksRule[] = ${JSON.stringify(rules, null, 1)};
`;
writeFileSync(new URL('../src/core/secretRules.generated.ts', import.meta.url), text);
console.log(`${rules.length} rules written; left out:\n  ${skipped.join('\n  ')}`);
