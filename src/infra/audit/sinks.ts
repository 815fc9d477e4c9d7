import { dirname, join } from 'node:path';
import { EXTENSION_ACTOR } from '../../core/constants';
import type { Logger } from '../../core/logger';
import type { AuditLog } from './log';
import { AuditSink, validateSinkEndpoint, type AuditSinkOptions, type EndpointSetting, type SinkTransport } from './sink';

/** An open repository whose audit log is shipped. A reopened repository has a new log, and gets a new sink. */
export interface SinkSource {
  readonly root: string;
  readonly name: string;
  readonly audit: Pick<AuditLog, 'file' | 'repoKey' | 'append'> & Partial<Pick<AuditLog, 'secretPatternsNow'>>;
}

/** What the sinks send and where, when they are not the org audit sink (the OTLP log export). */
interface SinkKind {
  /** Names the sender in the log: "OTLP log export". */
  label: string;
  transportFor(source: SinkSource): SinkTransport;
  /** The setting the endpoint comes from, for the words of its errors. */
  setting: EndpointSetting;
  /** The cursor's file name beside each log: each receiver has its own place in the log. */
  cursorFileName: string;
  /** The URL the batches go to, from the setting's (checked) URL. */
  endpointFor(url: URL): string;
  /** Timing of each sink (back-off, polling, timeout); the sink's defaults otherwise. */
  sinkOptions?: Partial<Pick<AuditSinkOptions, 'minBackoffMs' | 'maxBackoffMs' | 'pollIntervalMs' | 'timeoutMs'>>;
}

export interface AuditSinksOptions {
  /** The Authorization header value for the sink, read before each batch. */
  getAuthorization: () => Promise<string | undefined>;
  /** The endpoint is not one Agent Lanes sends to; nothing is shipped until it changes. */
  onInvalidEndpoint: (endpoint: string, error: string) => void;
  /** A log stopped continuing the chain its sink holds (recorded as audit.sinkBroken already). */
  onChainBroken?: (repository: string, message: string) => void;
  logger: Logger;
  /** Defaults to the org audit sink: the stored lines as a JSON array to the setting's URL. */
  kind?: SinkKind;
}

/**
 * One AuditSink per open repository while a sink endpoint is set: each log is
 * shipped from its durable cursor, woken by every append. Changes are applied
 * one after another, so a stopping sink has released its lock before the next
 * one for the same log starts.
 */
export class AuditSinks {
  private endpoint = '';
  /** Where the batches go: the endpoint, or the URL the kind makes of it. */
  private target = '';
  private valid = false;
  private readonly running = new Map<string, { source: SinkSource; sink: AuditSink }>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: AuditSinksOptions) {}

  private enqueue(work: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(work).catch((error: unknown) => this.options.logger.error(this.label, error));
    return this.queue;
  }

  /** Applies the setting: stops every sink and starts them again for the new endpoint. */
  configure(endpoint: string, sources: SinkSource[]): Promise<void> {
    return this.enqueue(async () => {
      const next = endpoint.trim();
      if (next === this.endpoint) return;
      await this.stopAll();
      this.endpoint = next;
      this.valid = false;
      if (!next) return;
      const kind = this.options.kind;
      const checked = validateSinkEndpoint(next, kind?.setting);
      if ('error' in checked) {
        this.options.logger.warn(`${this.label} not started: ${checked.error}`);
        this.options.onInvalidEndpoint(next, checked.error);
        return;
      }
      this.target = kind ? kind.endpointFor(checked.url) : next;
      this.valid = true;
      await this.startMissing(sources);
    });
  }

  /** Starts a sink for each repository that has none; stops those of repositories that closed. */
  sync(sources: SinkSource[]): Promise<void> {
    return this.enqueue(() => this.startMissing(sources));
  }

  /** After the token changed: new connections, and no back-off left from a refused token. */
  restart(sources: SinkSource[]): Promise<void> {
    return this.enqueue(async () => {
      await this.stopAll();
      await this.startMissing(sources);
    });
  }

  notify(root: string): void {
    this.running.get(root)?.sink.notify();
  }

  private async startMissing(sources: SinkSource[]): Promise<void> {
    for (const [root, entry] of this.running) {
      if (sources.some((source) => source.root === root && source.audit === entry.source.audit)) continue;
      this.running.delete(root);
      await this.stop(entry.sink);
    }
    if (!this.valid) return;
    for (const source of sources) {
      if (this.running.has(source.root)) continue;
      const kind = this.options.kind;
      const sink = new AuditSink({
        endpoint: this.target,
        auditFile: source.audit.file,
        repoKey: source.audit.repoKey,
        ...(kind
          ? { ...kind.sinkOptions, transport: kind.transportFor(source), cursorFile: join(dirname(source.audit.file), kind.cursorFileName) }
          : {}),
        getAuthorization: this.options.getAuthorization,
        logger: this.options.logger,
        onChainBroken: (broken) => {
          const { message, ...facts } = broken;
          source.audit
            .append({ actor: EXTENSION_ACTOR, action: 'audit.sinkBroken', details: { endpoint: this.target, ...facts, message } })
            .catch((error: unknown) => this.options.logger.error('Recording the audit sink break', error));
          this.options.onChainBroken?.(source.name, message);
        },
      });
      let failing = false;
      sink.onDidChangeStatus((status) => {
        if (status.consecutiveFailures > 0) failing = true;
        else if (failing && status.state !== 'waiting') {
          failing = false;
          this.options.logger.info(
            `${this.label} ${this.target} reachable again for ${source.name}: events up to ${status.acknowledgedSeq} acknowledged.`,
          );
        }
      });
      sink.start();
      this.running.set(source.root, { source, sink });
      this.options.logger.info(`${this.label}: shipping the audit log of ${source.name} to ${this.target}.`);
    }
  }

  private get label(): string {
    return this.options.kind?.label ?? 'Audit sink';
  }

  private async stopAll(): Promise<void> {
    const sinks = [...this.running.values()].map((entry) => entry.sink);
    this.running.clear();
    await Promise.all(sinks.map((sink) => this.stop(sink)));
  }

  private async stop(sink: AuditSink): Promise<void> {
    await sink.stop().catch((error: unknown) => this.options.logger.error(`Stopping the ${this.label}`, error));
  }

  dispose(): void {
    void this.enqueue(() => this.stopAll());
  }
}
