import { type DiffView, type FileDiff, type FileEntry, MAX_PATHS_PER_REQUEST } from '../../src/core/review/reviewProtocol';
import { h, icon, plural, shortSha } from './dom';
import type { Host } from './host';
import type { ViewStateStore } from './state';

/** Beyond this many files, file diffs start folded (the file list is the way in). */
const FOLD_BY_DEFAULT_ABOVE = 300;
const LINE_HEIGHT_PX = 19;
const MAX_ESTIMATED_LINES = 400;
const REQUESTS_IN_FLIGHT = 2;
/** File sections drawn before the first paint; the rest follow in chunks, or at once when jumped to. */
const FIRST_SECTIONS = 20;
const SECTIONS_PER_CHUNK = 300;
/** Links of the file list drawn before the first paint (more than a screen holds); the rest follow in chunks. */
const FIRST_LINKS = 200;
const LINKS_PER_CHUNK = 600;
const PATHS_PER_REQUEST = Math.min(20, MAX_PATHS_PER_REQUEST);

const STATUS_ICONS: Record<FileEntry['status'], string> = {
  added: 'diff-added',
  modified: 'diff-modified',
  deleted: 'diff-removed',
  renamed: 'diff-renamed',
  copied: 'diff-added',
  typeChanged: 'diff-modified',
  unmerged: 'warning',
  unknown: 'question',
};

function counts(file: FileEntry): string {
  if (file.additions === null || file.deletions === null) return 'binary';
  return `+${file.additions} −${file.deletions}`;
}

function pathLabel(file: FileEntry): HTMLElement {
  const slash = file.path.lastIndexOf('/');
  return h(
    'span',
    { class: 'path' },
    slash >= 0 ? h('span', { class: 'dir', text: file.path.slice(0, slash + 1) }) : null,
    h('span', { class: 'name', text: file.path.slice(slash + 1) }),
    file.oldPath !== undefined && file.oldPath !== file.path ? h('span', { class: 'old-path', text: ` ← ${file.oldPath}` }) : null,
  );
}

/** What the drawn diff depends on: a new model with the same signature changes nothing on screen. */
function diffSignature(diff: Extract<DiffView, { state: 'ok' }>): string {
  return [
    diff.baseSha,
    diff.headSha,
    ...diff.files.map((f) => `${f.path}\0${f.oldPath ?? ''}\0${f.status}\0${f.display}\0${f.note ?? ''}\0${f.additions}\0${f.deletions}`),
  ].join('\n');
}

/**
 * The diff, file by file: a file list to jump with, and one section per file
 * whose body is fetched from the host only when it is unfolded and scrolled
 * near, so 2,000 files open at once and render as the reviewer reads.
 */
export class DiffPanel {
  readonly element = h('section', { class: 'diff', id: 'diff', attrs: { 'aria-labelledby': 'diff-h', tabindex: -1 } });
  private hash: string | undefined;
  private signature: string | undefined;
  private files: FileEntry[] = [];
  private bodies: HTMLElement[] = [];
  private toggles: HTMLButtonElement[] = [];
  private links: HTMLAnchorElement[] = [];
  private readonly loaded = new Set<number>();
  private readonly requested = new Set<number>();
  private queue: number[] = [];
  private inFlight = 0;
  private foldByDefault = false;
  private observer: IntersectionObserver | undefined;
  private activeLink = 0;
  private sections: HTMLElement | undefined;
  private drawnSections = 0;
  private list: HTMLElement | undefined;
  private filterInput: HTMLInputElement | undefined;
  private chunkTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly host: Host,
    private readonly state: ViewStateStore,
    private readonly report: (kind: 'info' | 'error', text: string) => void,
  ) {}

  /**
   * Shows a diff; keeps what is on screen when the diff did not change (the
   * first model's file list, from the stored analysis, usually is the one git
   * lists: then nothing is drawn again).
   */
  update(diff: DiffView): void {
    const signature = diff.state === 'ok' ? diffSignature(diff) : undefined;
    if (diff.state === 'ok' && diff.hash === this.hash && signature === this.signature) return;
    this.reset();
    this.signature = signature;
    if (diff.state === 'error') {
      this.element.replaceChildren(
        h('h2', { id: 'diff-h', text: 'Diff' }),
        h('p', { class: 'notice error' }, icon('error'), ` ${diff.message}`),
      );
      return;
    }
    this.hash = diff.hash;
    this.files = diff.files;
    this.foldByDefault = diff.files.length > FOLD_BY_DEFAULT_ABOVE;
    this.render(diff);
  }

  private reset(): void {
    this.observer?.disconnect();
    if (this.chunkTimer) clearTimeout(this.chunkTimer);
    this.chunkTimer = undefined;
    this.sections = undefined;
    this.drawnSections = 0;
    this.list = undefined;
    this.hash = undefined;
    this.files = [];
    this.bodies = [];
    this.toggles = [];
    this.links = [];
    this.loaded.clear();
    this.requested.clear();
    this.queue = [];
    this.activeLink = 0;
  }

  private isExpanded(index: number): boolean {
    const file = this.files[index]!;
    // A file the reviewer toggled is the other way round from the default.
    return this.foldByDefault === this.state.data.toggledFiles.includes(file.path);
  }

  private render(diff: Extract<DiffView, { state: 'ok' }>): void {
    const openAll = h('vscode-button', {
      id: 'open-changes',
      text: "Open in VS Code's changes editor",
      attrs: { secondary: true, icon: 'diff-multiple' },
    });
    openAll.addEventListener('click', () => void this.open('openChanges'));
    const filter = h('input', {
      class: 'file-filter',
      id: 'file-filter',
      attrs: { type: 'search', placeholder: 'Filter files', 'aria-label': 'Filter the file list', 'aria-controls': 'file-list' },
    });
    filter.addEventListener('input', () => this.filter(filter.value));
    this.filterInput = filter;

    const list = h('ol', {
      class: 'file-list',
      id: 'file-list',
      attrs: { 'aria-label': `Files in this change (${diff.files.length}); arrow keys move, Enter jumps to the file` },
    });
    const sections = h('div', { class: 'files' });
    this.sections = sections;
    this.list = list;
    this.observer = new IntersectionObserver((entries) => this.onVisible(entries), { rootMargin: '800px 0px' });
    this.drawLinks(FIRST_LINKS);
    list.addEventListener('click', (event) => this.onListClick(event));
    list.addEventListener('keydown', (event) => this.onListKey(event));
    // Arrows move from wherever the focus is, also when it came by mouse or script.
    list.addEventListener('focusin', (event) => {
      const link = (event.target as Element).closest('a.file-link');
      if (link) this.moveActiveLink(Number(link.getAttribute('data-index')), false);
    });
    sections.addEventListener('click', (event) => this.onSectionClick(event));
    sections.addEventListener('keydown', (event) => this.onSectionKey(event));

    this.element.replaceChildren(
      h(
        'div',
        { class: 'diff-title' },
        h('h2', {
          id: 'diff-h',
          text: `Diff: ${plural(diff.totals.files, 'file')}, +${diff.totals.additions.toLocaleString('en-US')} −${diff.totals.deletions.toLocaleString('en-US')}`,
        }),
        openAll,
      ),
      h('p', { class: 'diff-range' }, `${shortSha(diff.baseSha)} → ${shortSha(diff.headSha)} · diff hash `, h('code', { text: diff.hash })),
      diff.files.length
        ? h('div', { class: 'diff-layout' }, h('nav', { class: 'file-nav', attrs: { 'aria-label': 'Files' } }, filter, list), sections)
        : h('p', { text: 'This change has no file changes.' }),
    );
    this.drawSections(FIRST_SECTIONS);
    this.scheduleChunk();
  }

  /** Draws the file list's links up to (not including) `end`; a filter already typed applies to them. */
  private drawLinks(end: number): void {
    const list = this.list;
    if (!list) return;
    const stop = Math.min(end, this.files.length);
    const start = this.links.length;
    if (start >= stop) return;
    const needle = this.filterInput?.value.trim().toLowerCase() ?? '';
    const fragment = document.createDocumentFragment();
    for (let index = start; index < stop; index++) {
      const file = this.files[index]!;
      const link = h(
        'a',
        {
          class: `file-link status-${file.status}`,
          attrs: { href: `#file-${index}`, 'data-index': index, tabindex: index === this.activeLink ? 0 : -1 },
        },
        icon(STATUS_ICONS[file.status]),
        pathLabel(file),
        h('span', { class: 'counts', text: counts(file) }),
      );
      this.links.push(link);
      const item = h('li', null, link);
      item.hidden = needle !== '' && !file.path.toLowerCase().includes(needle);
      fragment.appendChild(item);
    }
    list.appendChild(fragment);
  }

  /** Draws file sections up to (not including) `end`. */
  private drawSections(end: number): void {
    const sections = this.sections;
    if (!sections) return;
    const stop = Math.min(end, this.files.length);
    if (this.drawnSections >= stop) return;
    const fragment = document.createDocumentFragment();
    for (let index = this.drawnSections; index < stop; index++) {
      fragment.appendChild(this.fileSection(this.files[index]!, index));
      if (this.isExpanded(index) && this.files[index]!.display === 'text') this.observer?.observe(this.bodies[index]!);
    }
    this.drawnSections = stop;
    sections.appendChild(fragment);
  }

  private scheduleChunk(): void {
    if (this.drawnSections >= this.files.length && this.links.length >= this.files.length) return;
    this.chunkTimer = setTimeout(() => {
      this.chunkTimer = undefined;
      this.drawLinks(this.links.length + LINKS_PER_CHUNK);
      this.drawSections(this.drawnSections + SECTIONS_PER_CHUNK);
      this.scheduleChunk();
    }, 16);
  }

  private fileSection(file: FileEntry, index: number): HTMLElement {
    const expanded = this.isExpanded(index);
    const toggle = h(
      'button',
      {
        class: 'toggle',
        attrs: { type: 'button', 'aria-expanded': String(expanded), 'aria-controls': `file-${index}-body`, 'data-index': index },
      },
      icon(expanded ? 'chevron-down' : 'chevron-right', 'chevron'),
      pathLabel(file),
    );
    this.toggles.push(toggle);
    const opener =
      file.display === 'submodule'
        ? null
        : h('button', {
            class: 'link open-diff',
            text: file.display === 'binary' ? 'Open file' : 'Open diff',
            attrs: { type: 'button', 'data-index': index, 'data-open': 'diff', 'aria-label': `Open ${file.path} in VS Code's diff editor` },
          });
    const body = h('div', {
      class: `file-body display-${file.display}`,
      id: `file-${index}-body`,
      attrs: { role: 'region', 'aria-label': `Diff of ${file.path}`, 'data-index': index },
    });
    body.hidden = !expanded;
    if (file.display === 'text') {
      const lines = Math.min((file.additions ?? 0) + (file.deletions ?? 0) + 6, MAX_ESTIMATED_LINES);
      body.style.minHeight = `${lines * LINE_HEIGHT_PX}px`;
      body.appendChild(h('p', { class: 'placeholder', text: 'Loading…' }));
    } else {
      body.appendChild(
        h(
          'p',
          { class: 'not-rendered' },
          icon(file.display === 'binary' ? 'file-binary' : file.display === 'submodule' ? 'file-submodule' : 'file'),
          ` ${file.note ?? ''}`,
        ),
      );
    }
    if (file.note && file.display === 'text') body.prepend(h('p', { class: 'file-note', text: file.note }));
    this.bodies.push(body);
    return h(
      'section',
      { class: `file status-${file.status}`, id: `file-${index}`, attrs: { 'aria-labelledby': `file-${index}-h` } },
      h(
        'h3',
        { class: 'file-header', id: `file-${index}-h` },
        toggle,
        h('span', { class: 'status', text: file.status }),
        h('span', { class: 'counts', text: counts(file) }),
        opener,
      ),
      body,
    );
  }

  // -------------------------------------------------------------------------
  // Folding and jumping

  private setExpanded(index: number, expanded: boolean): void {
    const toggle = this.toggles[index];
    const body = this.bodies[index];
    const file = this.files[index];
    if (!toggle || !body || !file) return;
    toggle.setAttribute('aria-expanded', String(expanded));
    toggle.querySelector('.chevron')!.className = `codicon codicon-${expanded ? 'chevron-down' : 'chevron-right'} chevron`;
    body.hidden = !expanded;
    const toggled = new Set(this.state.data.toggledFiles);
    if (expanded === this.foldByDefault) toggled.add(file.path);
    else toggled.delete(file.path);
    this.state.update({ toggledFiles: [...toggled] });
    if (expanded && file.display === 'text' && !this.loaded.has(index)) this.observer?.observe(body);
  }

  /** Scrolls to a file, unfolds it, and puts the focus on its header. */
  jumpTo(index: number): void {
    this.drawLinks(index + 1);
    this.drawSections(index + 1);
    if (!this.toggles[index]) return;
    if (!this.isExpanded(index)) this.setExpanded(index, true);
    document.getElementById(`file-${index}`)?.scrollIntoView({ block: 'start' });
    this.toggles[index]!.focus({ preventScroll: true });
  }

  private onListClick(event: Event): void {
    const link = (event.target as Element).closest('a.file-link');
    if (!link) return;
    event.preventDefault();
    const index = Number(link.getAttribute('data-index'));
    this.moveActiveLink(index, false);
    this.jumpTo(index);
  }

  private visibleLinkIndexes(): number[] {
    return this.links.flatMap((link, index) => ((link.parentElement as HTMLElement).hidden ? [] : [index]));
  }

  private moveActiveLink(index: number, focus: boolean): void {
    const previous = this.links[this.activeLink];
    previous?.setAttribute('tabindex', '-1');
    this.activeLink = index;
    const link = this.links[index];
    link?.setAttribute('tabindex', '0');
    if (focus) link?.focus();
  }

  private onListKey(event: KeyboardEvent): void {
    const visible = this.visibleLinkIndexes();
    if (!visible.length) return;
    const position = Math.max(0, visible.indexOf(this.activeLink));
    const step: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 };
    let next: number | undefined;
    if (event.key in step) next = visible[Math.min(visible.length - 1, Math.max(0, position + step[event.key]!))];
    else if (event.key === 'Home') next = visible[0];
    else if (event.key === 'End') next = visible[visible.length - 1];
    else if (event.key === ' ') {
      event.preventDefault();
      this.jumpTo(this.activeLink);
      return;
    }
    if (next === undefined) return;
    event.preventDefault();
    this.moveActiveLink(next, true);
  }

  private onSectionClick(event: Event): void {
    const target = event.target as Element;
    const toggle = target.closest('button.toggle');
    if (toggle) {
      const index = Number(toggle.getAttribute('data-index'));
      this.setExpanded(index, !this.isExpanded(index));
      return;
    }
    const opener = target.closest('button.open-diff');
    if (opener) {
      const file = this.files[Number(opener.getAttribute('data-index'))];
      if (file) void this.open('openFileDiff', file.path);
      return;
    }
    const retry = target.closest('button.retry');
    if (retry) {
      const index = Number(retry.getAttribute('data-index'));
      this.requested.delete(index);
      this.enqueue([index]);
    }
  }

  /** Up and Down on a file header move to the previous or next file. */
  private onSectionKey(event: KeyboardEvent): void {
    const toggle = (event.target as Element).closest('button.toggle');
    if (!toggle || (event.key !== 'ArrowDown' && event.key !== 'ArrowUp')) return;
    const index = Number(toggle.getAttribute('data-index')) + (event.key === 'ArrowDown' ? 1 : -1);
    this.drawSections(index + 1);
    const next = this.toggles[index];
    if (!next) return;
    event.preventDefault();
    next.focus();
    next.scrollIntoView({ block: 'nearest' });
  }

  private filter(text: string): void {
    this.drawLinks(this.files.length);
    const needle = text.trim().toLowerCase();
    this.links.forEach((link, index) => {
      (link.parentElement as HTMLElement).hidden = needle !== '' && !this.files[index]!.path.toLowerCase().includes(needle);
    });
    const visible = this.visibleLinkIndexes();
    if (visible.length && !visible.includes(this.activeLink)) this.moveActiveLink(visible[0]!, false);
  }

  private async open(type: 'openChanges' | 'openFileDiff', path?: string): Promise<void> {
    const response =
      type === 'openChanges' ? await this.host.request('openChanges', {}) : await this.host.request('openFileDiff', { path: path! });
    if (!response.ok) this.report('error', response.error);
  }

  // -------------------------------------------------------------------------
  // Loading on demand

  private onVisible(entries: IntersectionObserverEntry[]): void {
    const wanted: number[] = [];
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const index = Number((entry.target as HTMLElement).getAttribute('data-index'));
      if (!this.loaded.has(index) && !this.requested.has(index)) wanted.push(index);
    }
    this.enqueue(wanted);
  }

  private enqueue(indexes: number[]): void {
    for (const index of indexes) {
      this.requested.add(index);
      this.queue.push(index);
    }
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < REQUESTS_IN_FLIGHT && this.queue.length) {
      const batch = this.queue.splice(0, PATHS_PER_REQUEST);
      this.inFlight++;
      void this.load(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async load(indexes: number[]): Promise<void> {
    const hash = this.hash;
    const response = await this.host.request('loadFiles', { paths: indexes.map((index) => this.files[index]!.path) }, 60_000);
    if (hash !== this.hash) return;
    if (!response.ok) {
      for (const index of indexes) this.showLoadError(index, response.error);
      return;
    }
    const byPath = new Map((response.files ?? []).map((file) => [file.path, file]));
    for (const index of indexes) {
      const result = byPath.get(this.files[index]!.path);
      if (!result) this.showLoadError(index, 'VS Code sent no diff for this file.');
      else this.showFile(index, result);
    }
  }

  private showLoadError(index: number, message: string): void {
    const body = this.bodies[index];
    if (!body) return;
    body.style.minHeight = '';
    body.replaceChildren(
      h(
        'p',
        { class: 'notice error' },
        icon('error'),
        ` ${message} `,
        h('button', { class: 'link retry', text: 'Retry', attrs: { type: 'button', 'data-index': index } }),
      ),
    );
  }

  private showFile(index: number, diff: FileDiff): void {
    const body = this.bodies[index];
    if (!body) return;
    this.loaded.add(index);
    this.observer?.unobserve(body);
    body.style.minHeight = '';
    const note = body.querySelector('.file-note');
    if (diff.kind !== 'text') {
      body.replaceChildren(
        ...(note ? [note] : []),
        h('p', { class: diff.kind === 'error' ? 'notice error' : 'not-rendered', text: diff.message }),
      );
      return;
    }
    const fragment = document.createDocumentFragment();
    if (note) fragment.appendChild(note);
    if (diff.truncatedLines)
      fragment.appendChild(
        h('p', {
          class: 'file-note',
          text: `${plural(diff.truncatedLines, 'long line')} cut at 2,000 characters here; open the diff editor for the full text.`,
        }),
      );
    const code = h('div', { class: 'code' });
    for (const hunk of diff.hunks) {
      code.appendChild(h('div', { class: 'hunk-header' }, h('span', { text: hunk.header })));
      let oldLine = hunk.oldStart;
      let newLine = hunk.newStart;
      for (const line of hunk.lines) {
        const kind = line[0];
        let oldNo = '';
        let newNo = '';
        let cls = 'ctx';
        if (kind === '+') {
          newNo = String(newLine++);
          cls = 'add';
        } else if (kind === '-') {
          oldNo = String(oldLine++);
          cls = 'del';
        } else if (kind === '\\') {
          cls = 'meta';
        } else {
          oldNo = String(oldLine++);
          newNo = String(newLine++);
        }
        const row = document.createElement('div');
        row.className = `line ${cls}`;
        const a = document.createElement('span');
        a.className = 'ln';
        a.textContent = oldNo;
        const b = document.createElement('span');
        b.className = 'ln';
        b.textContent = newNo;
        const text = document.createElement('span');
        text.className = 'text';
        text.textContent = line;
        row.append(a, b, text);
        code.appendChild(row);
      }
    }
    fragment.appendChild(code);
    body.replaceChildren(fragment);
  }
}
