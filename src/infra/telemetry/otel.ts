/**
 * The OpenTelemetry side of agentLanes.telemetry.otlpEndpoint, bundled on its
 * own (dist/otel.js) and loaded only when the setting is set, so the OTel SDK
 * costs nothing at activation when telemetry is off. It imports nothing of the
 * product but the instrument list: records and points arrive as plain data,
 * already redacted.
 */
import type { Attributes, ObservableCounter, ObservableGauge } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, type LogRecordProcessor, type ReadableLogRecord, type ReadWriteLogRecord } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { TELEMETRY_INSTRUMENTS, type TelemetryInstrument } from './instruments';
import type { TelemetryLogRecord } from './logRecords';
import type { TelemetryMetricPoint } from './metricPoints';

/** Resource attributes: service.name=agent-lanes, service.version, … */
type TelemetryResource = Record<string, string>;

const SCOPE = 'agent-lanes';

/** Keeps what the logger emits, for the caller to serialize: the sink, not the SDK, sends and retries. */
class CollectingProcessor implements LogRecordProcessor {
  records: ReadableLogRecord[] = [];
  onEmit(record: ReadWriteLogRecord): void {
    this.records.push(record);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Turns log records into an OTLP ExportLogsServiceRequest (protobuf), through
 * the SDK's logger (resource, scope, limits) and the official serializer.
 */
export function createLogEncoder(resource: TelemetryResource, version: string): (records: readonly TelemetryLogRecord[]) => Uint8Array {
  const collected = new CollectingProcessor();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes(resource),
    processors: [collected],
    logRecordLimits: { attributeCountLimit: 512, attributeValueLengthLimit: 8192 },
  });
  const logger = provider.getLogger(SCOPE, version);
  return (records) => {
    collected.records = [];
    for (const record of records) {
      logger.emit({
        timestamp: record.timeMs,
        observedTimestamp: Date.now(),
        eventName: record.eventName,
        severityNumber: SeverityNumber.INFO,
        severityText: 'INFO',
        body: record.body,
        attributes: record.attributes,
      });
    }
    const body = ProtobufLogsSerializer.serializeRequest(collected.records);
    collected.records = [];
    if (!body) throw new Error('The OTLP serializer produced no request for the audit events.');
    return body;
  };
}

export interface MetricsExportOptions {
  /** The full OTLP/HTTP metrics URL (…/v1/metrics). */
  url: string;
  resource: TelemetryResource;
  version: string;
  intervalMs: number;
  timeoutMs: number;
  headers?: () => Promise<Record<string, string>>;
  /** The current points; called once per export. */
  collect: () => Promise<TelemetryMetricPoint[]>;
  /** An export failed after a success (or first), or succeeded after a failure: said once per change, not per minute. */
  onHealth?: (ok: boolean, error?: string) => void;
}

/** The official exporter, telling when exports start failing and when they work again (the SDK only tells its diag logger). */
function reportingExporter(exporter: PushMetricExporter, onHealth: MetricsExportOptions['onHealth']): PushMetricExporter {
  let healthy = true;
  return {
    export: (metrics, done) =>
      exporter.export(metrics, (result) => {
        const ok = result.code === ExportResultCode.SUCCESS;
        if (ok !== healthy) onHealth?.(ok, result.error?.message);
        healthy = ok;
        done(result);
      }),
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown(),
    ...(exporter.selectAggregationTemporality
      ? { selectAggregationTemporality: exporter.selectAggregationTemporality.bind(exporter) }
      : {}),
    ...(exporter.selectAggregation ? { selectAggregation: exporter.selectAggregation.bind(exporter) } : {}),
  };
}

export interface MetricsExport {
  /** Collects and exports now (used at shutdown and by tests). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * The promotion metrics as OTel observable instruments, read from the points
 * at each export and sent by the official OTLP/HTTP protobuf exporter. The
 * values are cumulative over the whole log, so an export lost while the
 * collector is down is made good by the next one.
 */
export function startMetricsExport(options: MetricsExportOptions): MetricsExport {
  const exporter = new OTLPMetricExporter({
    url: options.url,
    timeoutMillis: options.timeoutMs,
    ...(options.headers ? { headers: options.headers } : {}),
  });
  const reader = new PeriodicExportingMetricReader({
    exporter: reportingExporter(exporter, options.onHealth),
    exportIntervalMillis: options.intervalMs,
    exportTimeoutMillis: Math.min(options.timeoutMs, options.intervalMs),
  });
  const provider = new MeterProvider({ resource: resourceFromAttributes(options.resource), readers: [reader] });
  const meter = provider.getMeter(SCOPE, options.version);
  const instruments = new Map<TelemetryInstrument, ObservableCounter | ObservableGauge>();
  for (const [name, spec] of Object.entries(TELEMETRY_INSTRUMENTS) as [
    TelemetryInstrument,
    (typeof TELEMETRY_INSTRUMENTS)[TelemetryInstrument],
  ][]) {
    const described = { unit: spec.unit, description: spec.description };
    instruments.set(
      name,
      spec.kind === 'counter' ? meter.createObservableCounter(name, described) : meter.createObservableGauge(name, described),
    );
  }
  meter.addBatchObservableCallback(
    async (result) => {
      for (const point of await options.collect()) {
        const instrument = instruments.get(point.instrument);
        if (instrument) result.observe(instrument, point.value, point.attributes as Attributes);
      }
    },
    [...instruments.values()],
  );
  return {
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
