import type { Logger } from '../../core/logger';
import { validateSinkEndpoint, type EndpointSetting } from '../audit/sink';
import { AuditSinks, type SinkSource } from '../audit/sinks';
import { auditLogRecord } from './logRecords';
import { TelemetryMetricsSource } from './metricPoints';
import type { MetricsExport } from './otel';

export const OTLP_ENDPOINT_SETTING = 'agentLanes.telemetry.otlpEndpoint';

const OTLP_SETTING: EndpointSetting = {
  what: 'OTLP endpoint',
  setting: OTLP_ENDPOINT_SETTING,
  example: 'http://localhost:4318 (a local OpenTelemetry Collector) or https://otel.example.com',
};

/** The cursor of the OTLP log export beside each audit log (the org sink's is sink-cursor.json). */
const OTLP_CURSOR_FILE = 'otlp-cursor.json';

type OtelModule = typeof import('./otel');

/** Events redacted in one turn of the event loop (tens of milliseconds). */
const REDACT_SLICE = 20;

/**
 * dist/otel.js, read on first use. esbuild leaves this require alone in the product build (external): the OTel
 * SDK is a bundle of its own beside lanes.js and cli.js, so it costs nothing while the setting is empty. A test
 * bundle resolves it to otel.ts and bundles it in.
 */
function loadOtelBundle(): OtelModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./otel.js') as OtelModule;
}

/**
 * The base URL of an OTLP/HTTP receiver (as OTEL_EXPORTER_OTLP_ENDPOINT): logs go to …/v1/logs and metrics to
 * …/v1/metrics. HTTPS, or plain HTTP to this machine only (a local collector), as for the audit sink.
 */
function validateOtlpEndpoint(value: string): { url: URL } | { error: string } {
  const checked = validateSinkEndpoint(value, OTLP_SETTING);
  if ('error' in checked) return checked;
  if (/\/v1\/(?:logs|metrics|traces)\/?$/.test(checked.url.pathname)) {
    return {
      error: `The OTLP endpoint ${checked.url.href} names one signal's path. Set ${OTLP_ENDPOINT_SETTING} to the receiver's base URL, for example ${checked.url.origin}; Agent Lanes adds /v1/logs and /v1/metrics.`,
    };
  }
  if (checked.url.search || checked.url.hash) {
    return {
      error: `The OTLP endpoint ${checked.url.href} has a query or fragment. Set ${OTLP_ENDPOINT_SETTING} to the receiver's base URL.`,
    };
  }
  return checked;
}

function signalUrl(base: URL, signal: 'logs' | 'metrics'): string {
  const url = new URL(base.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/${signal}`;
  return url.href;
}

export interface OtlpTelemetryOptions {
  /** The extension's version: service.version and the instrumentation scope's version. */
  version: string;
  logger: Logger;
  /** The Authorization header value for the receiver (for example "Bearer …" from SecretStorage), read before each request. */
  getAuthorization?: () => Promise<string | undefined>;
  /** The endpoint is not one Agent Lanes sends to; nothing is sent until it changes. */
  onInvalidEndpoint: (endpoint: string, error: string) => void;
  /** A log stopped continuing the chain its export holds (recorded as audit.sinkBroken already). */
  onChainBroken?: (repository: string, message: string) => void;
  /** How often the metrics are exported; default one minute. */
  metricsIntervalMs?: number;
  timeoutMs?: number;
  /** For tests: back-off and polling of the log export. */
  sinkTiming?: { minBackoffMs?: number; maxBackoffMs?: number; pollIntervalMs?: number };
}

/**
 * agentLanes.telemetry.otlpEndpoint: the audit events as OTel log records and
 * the promotion metrics as OTel metrics, over OTLP/HTTP (protobuf).
 *
 * The log records go out the way the org audit sink ships the log: from a
 * durable cursor per log (otlp-cursor.json), woken by every append, with the
 * sink's back-off, lock and chain checks; only the wire format differs. The
 * metrics are read from the same logs at each export. Nothing here is awaited
 * by an append: a collector that is down or slow only delays the export.
 */
export class OtlpTelemetry {
  private endpoint = '';
  private sources: SinkSource[] = [];
  private otel: OtelModule | undefined;
  private metrics: MetricsExport | undefined;
  private readonly logs: AuditSinks;
  private readonly metricsSource: TelemetryMetricsSource;
  private readonly resource: Record<string, string>;

  constructor(private readonly options: OtlpTelemetryOptions) {
    this.resource = { 'service.name': 'agent-lanes', 'service.version': options.version };
    this.metricsSource = new TelemetryMetricsSource((message) => options.logger.warn(`OTLP metrics: ${message}`));
    const timing = options.sinkTiming ?? {};
    const getAuthorization = options.getAuthorization ?? (() => Promise.resolve(undefined));
    this.logs = new AuditSinks({
      logger: options.logger,
      getAuthorization,
      onInvalidEndpoint: options.onInvalidEndpoint,
      ...(options.onChainBroken ? { onChainBroken: options.onChainBroken } : {}),
      kind: {
        label: 'OTLP log export',
        setting: OTLP_SETTING,
        cursorFileName: OTLP_CURSOR_FILE,
        endpointFor: (url) => signalUrl(url, 'logs'),
        transportFor: (source) => {
          const encode = this.loadOtel().createLogEncoder(this.resource, options.version);
          const repository = { name: source.name, key: source.audit.repoKey };
          return {
            label: 'OTLP log export',
            contentType: 'application/x-protobuf',
            encode: async (lines) => {
              const records = [];
              for (const [index, line] of lines.entries()) {
                // Redaction costs about a millisecond an event: a backlog of thousands must not hold the editor's thread.
                if (index > 0 && index % REDACT_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
                records.push(auditLogRecord(line, repository, source.audit.secretPatternsNow));
              }
              return encode(records);
            },
          };
        },
        sinkOptions: { ...timing, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) },
      },
    });
  }

  private loadOtel(): OtelModule {
    return (this.otel ??= loadOtelBundle());
  }

  /** Applies the setting (empty: off). Never awaited by the editor. */
  async configure(endpoint: string, sources: SinkSource[]): Promise<void> {
    this.sources = sources;
    const next = endpoint.trim();
    if (next === this.endpoint) return;
    this.endpoint = next;
    await this.stopMetrics();
    if (!next) return this.logs.configure('', sources);
    const checked = validateOtlpEndpoint(next);
    if ('error' in checked) {
      this.options.logger.warn(`OTLP export not started: ${checked.error}`);
      this.options.onInvalidEndpoint(next, checked.error);
      return this.logs.configure('', sources);
    }
    await this.logs.configure(next, sources);
    const getAuthorization = this.options.getAuthorization ?? (() => Promise.resolve(undefined));
    const url = signalUrl(checked.url, 'metrics');
    this.metrics = this.loadOtel().startMetricsExport({
      url,
      resource: this.resource,
      version: this.options.version,
      intervalMs: this.options.metricsIntervalMs ?? 60_000,
      timeoutMs: this.options.timeoutMs ?? 15_000,
      headers: async (): Promise<Record<string, string>> => {
        const authorization = await getAuthorization();
        return authorization ? { Authorization: authorization } : {};
      },
      onHealth: (ok, error) => {
        if (ok) this.options.logger.info(`OTLP metrics export to ${url} works again.`);
        else
          this.options.logger.warn(
            `OTLP metrics export to ${url} failed (${error ?? 'no reason given'}); the next export sends the totals again.`,
          );
      },
      collect: () =>
        this.metricsSource.collect(
          this.sources.map((source) => ({ file: source.audit.file, repository: { name: source.name, key: source.audit.repoKey } })),
        ),
    });
    this.options.logger.info(
      `OTLP export: promotion metrics to ${url} every ${Math.round((this.options.metricsIntervalMs ?? 60_000) / 1000)} s.`,
    );
  }

  /** Follows the open repositories. */
  sync(sources: SinkSource[]): Promise<void> {
    this.sources = sources;
    return this.logs.sync(sources);
  }

  /** After the token changed: new connections, and no back-off left from a refused token (metrics read it per export). */
  restart(sources: SinkSource[]): Promise<void> {
    this.sources = sources;
    return this.logs.restart(sources);
  }

  /** New events in the log of the repository at `root`. */
  notify(root: string): void {
    this.logs.notify(root);
  }

  /** Exports the metrics now (the log records go out on their own). */
  async flushMetrics(): Promise<void> {
    await this.metrics?.flush();
  }

  private async stopMetrics(): Promise<void> {
    const metrics = this.metrics;
    this.metrics = undefined;
    await metrics?.shutdown().catch((error: unknown) => this.options.logger.error('Stopping the OTLP metrics export', error));
  }

  async dispose(): Promise<void> {
    await Promise.all([this.stopMetrics(), this.logs.configure('', [])]);
  }
}
