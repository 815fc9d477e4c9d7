import { h } from './dom';

interface TabSpec<K extends string> {
  key: K;
  label: string;
  panel: HTMLElement;
}

/**
 * A tab list (WAI-ARIA tabs, automatic activation): Left/Right/Home/End move
 * between tabs, the chosen tab's panel shows and the others are hidden.
 */
export class Tabs<K extends string> {
  readonly element: HTMLElement;
  private readonly buttons = new Map<K, HTMLButtonElement>();
  private readonly panels = new Map<K, HTMLElement>();
  private current: K;

  constructor(
    private readonly specs: readonly TabSpec<K>[],
    initial: K,
    private readonly onSelect: (key: K) => void,
  ) {
    this.current = specs.some((spec) => spec.key === initial) ? initial : specs[0]!.key;
    const list = h('div', { class: 'tab-list', attrs: { role: 'tablist', 'aria-label': 'The change' } });
    const panels: HTMLElement[] = [];
    for (const spec of specs) {
      const button = h('button', {
        class: 'tab',
        id: `tab-${spec.key}`,
        text: spec.label,
        attrs: { type: 'button', role: 'tab', 'aria-controls': `tabpanel-${spec.key}` },
      });
      button.addEventListener('click', () => this.select(spec.key));
      button.addEventListener('keydown', (event) => this.onKey(event, spec.key));
      this.buttons.set(spec.key, button);
      list.appendChild(button);
      const panel = h(
        'div',
        { class: 'tab-panel', id: `tabpanel-${spec.key}`, attrs: { role: 'tabpanel', 'aria-labelledby': `tab-${spec.key}` } },
        spec.panel,
      );
      this.panels.set(spec.key, panel);
      panels.push(panel);
    }
    this.element = h('div', { class: 'tabs' }, list, ...panels);
    this.apply();
  }

  get selected(): K {
    return this.current;
  }

  select(key: K, focus = false): void {
    if (!this.buttons.has(key)) return;
    const changed = key !== this.current;
    this.current = key;
    this.apply();
    if (focus) this.buttons.get(key)!.focus();
    if (changed) this.onSelect(key);
  }

  setLabel(key: K, label: string): void {
    const button = this.buttons.get(key);
    if (button && button.textContent !== label) button.textContent = label;
  }

  private apply(): void {
    for (const [key, button] of this.buttons) {
      const on = key === this.current;
      button.setAttribute('aria-selected', String(on));
      button.tabIndex = on ? 0 : -1;
      this.panels.get(key)!.hidden = !on;
    }
  }

  private onKey(event: KeyboardEvent, key: K): void {
    const keys = this.specs.map((spec) => spec.key);
    const index = keys.indexOf(key);
    const next: Record<string, number> = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: keys.length - 1 };
    if (!(event.key in next)) return;
    event.preventDefault();
    const target = keys[(next[event.key]! + keys.length) % keys.length]!;
    this.select(target, true);
  }
}
