import { type ResponseMessage, type WebviewMessage, type WebviewRequest } from '../../src/core/review/reviewProtocol';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

/** The webview's side of the protocol: notifications out, requests with ids answered by responses. */
export class Host {
  private readonly api = acquireVsCodeApi();
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (response: ResponseMessage) => void; timer: ReturnType<typeof setTimeout> }>();

  constructor(readonly changeId: string) {}

  notify(message: Extract<WebviewMessage, { type: 'ready' | 'rendered' | 'webviewError' }>): void {
    this.api.postMessage(message);
  }

  /** Sends a request; resolves with its response (a timeout answers as a failure). */
  request<T extends WebviewRequest['type']>(
    type: T,
    params: Omit<Extract<WebviewRequest, { type: T }>, 'type' | 'id' | 'changeId'>,
    timeoutMs = 120_000,
  ): Promise<ResponseMessage> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ type: 'response', id, ok: false, error: 'VS Code did not answer in time. Refresh the review and try again.' });
      }, timeoutMs);
      this.pending.set(id, { resolve, timer });
      this.api.postMessage({ type, id, changeId: this.changeId, ...params });
    });
  }

  /** Hands a response to the request waiting for it; false when none waits. */
  settle(response: ResponseMessage): boolean {
    const waiting = this.pending.get(response.id);
    if (!waiting) return false;
    clearTimeout(waiting.timer);
    this.pending.delete(response.id);
    waiting.resolve(response);
    return true;
  }

  getState(): unknown {
    return this.api.getState();
  }

  setState(state: unknown): void {
    this.api.setState(state);
  }
}
