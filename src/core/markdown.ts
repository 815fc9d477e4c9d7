/** Small helpers for Markdown documents the extension generates (history, decisions). */

/** Text for one Markdown table cell: one line, pipes escaped. */
export function mdCell(text: string, max = 400): string {
  const line = text.replace(/\s*\n\s*/g, ' ').trim();
  const cut = line.length > max ? `${line.slice(0, max - 1)}…` : line;
  // escapeMarkdown escapes | too, which GitHub-flavoured tables need.
  return escapeMarkdown(cut) || ' ';
}

/** Escapes Markdown's special characters in plain text. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]<>#|!]/g, '\\$&');
}

/** Inline code that survives backticks in the text. */
export function mdCode(text: string): string {
  const fence = text.includes('`') ? '``' : '`';
  return `${fence}${fence === '``' ? ' ' : ''}${text.replace(/\n/g, ' ')}${fence === '``' ? ' ' : ''}${fence}`;
}
