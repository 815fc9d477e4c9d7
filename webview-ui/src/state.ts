import { type ReviewPanelState, ReviewPanelStateSchema } from '../../src/core/review/reviewProtocol';
import type { Host } from './host';

const SAVE_DELAY_MS = 200;

/**
 * What the review remembers across reloads and hiding (getState/setState; the
 * panel serializer reads repoRoot and changeId back). State from another
 * change, or that does not parse, is dropped.
 */
export class ViewStateStore {
  data: ReviewPanelState;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly host: Host,
    repoRoot: string,
    changeId: string,
  ) {
    const parsed = ReviewPanelStateSchema.safeParse(host.getState());
    const fresh: ReviewPanelState = { repoRoot, changeId, toggledFiles: [], openSections: [], tab: 'files', scrollY: 0, commentDraft: '' };
    this.data = parsed.success && parsed.data.changeId === changeId && parsed.data.repoRoot === repoRoot ? parsed.data : fresh;
    this.host.setState(this.data);
  }

  update(patch: Partial<ReviewPanelState>): void {
    this.data = { ...this.data, ...patch };
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.host.setState(this.data);
    }, SAVE_DELAY_MS);
  }
}
