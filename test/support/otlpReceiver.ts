import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
// The OpenTelemetry project's protobufjs classes generated from the opentelemetry-proto definitions, as the
// project published them on npm (the devDependency otlp-protocol-definitions is @opentelemetry/otlp-transformer
// 0.214.0, the last release that ships them): what Agent Lanes sends is decoded against the protocol, not
// against the serializer that wrote it.
import * as generated from 'otlp-protocol-definitions/build/src/generated/root';

/** The API protobufjs generates for each message (the package declares the root as untyped). */
interface GeneratedMessage {
  decode(body: Uint8Array): unknown;
  toObject(message: unknown, options: object): Record<string, unknown>;
}
interface CollectorNamespace {
  opentelemetry: {
    proto: { collector: { logs: { v1: Record<string, GeneratedMessage> }; metrics: { v1: Record<string, GeneratedMessage> } } };
  };
}
const { collector } = (generated as unknown as CollectorNamespace).opentelemetry.proto;
const LogsRequest = collector.logs.v1.ExportLogsServiceRequest!;
const MetricsRequest = collector.metrics.v1.ExportMetricsServiceRequest!;

type Value = { stringValue?: string; intValue?: number; doubleValue?: number; boolValue?: boolean };
type KeyValues = { key: string; value: Value }[] | undefined;
export type Attrs = Record<string, string | number | boolean>;

const attrs = (list: KeyValues): Attrs =>
  Object.fromEntries(
    (list ?? []).map(({ key, value }) => [key, value.stringValue ?? value.intValue ?? value.doubleValue ?? value.boolValue!]),
  );

interface ReceivedLog {
  eventName: string;
  body: string;
  timeUnixNano: number;
  attributes: Attrs;
  resource: Attrs;
}

interface ReceivedPoint {
  name: string;
  kind: 'sum' | 'gauge';
  monotonic?: boolean;
  value: number;
  attributes: Attrs;
  resource: Attrs;
}

const decodeOptions = { longs: Number, enums: String, defaults: false, arrays: true };

/** A real OTLP/HTTP receiver on 127.0.0.1 that decodes what it gets with the protocol's generated definitions. */
export class OtlpReceiver {
  server: Server | undefined;
  port = 0;
  delayMs = 0;
  /** Every request body, decompressed, as it came. */
  bodies: Buffer[] = [];
  logs: ReceivedLog[] = [];
  metricRequests: ReceivedPoint[][] = [];
  contentTypes = new Set<string>();
  /** `<path> <Authorization header>` of every request. */
  authorizations = new Set<string>();

  async up(): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const raw = Buffer.concat(chunks);
        const body = request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        this.bodies.push(body);
        this.contentTypes.add(`${request.url} ${request.headers['content-type']}`);
        this.authorizations.add(`${request.url} ${request.headers.authorization ?? '(none)'}`);
        if (request.url === '/v1/logs') this.receiveLogs(body);
        else if (request.url === '/v1/metrics') this.receiveMetrics(body);
        const answer = () => {
          if (response.destroyed) return;
          response.writeHead(request.url === '/v1/logs' || request.url === '/v1/metrics' ? 200 : 404, {
            'Content-Type': 'application/x-protobuf',
          });
          response.end();
        };
        if (this.delayMs) setTimeout(answer, this.delayMs);
        else answer();
      });
    });
    await new Promise<void>((done) => server.listen(this.port, '127.0.0.1', done));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private receiveLogs(body: Buffer): void {
    const request = LogsRequest.toObject(LogsRequest.decode(body), decodeOptions) as {
      resourceLogs: { resource: { attributes: KeyValues }; scopeLogs: { logRecords: Record<string, unknown>[] }[] }[];
    };
    for (const resourceLogs of request.resourceLogs)
      for (const scope of resourceLogs.scopeLogs)
        for (const record of scope.logRecords)
          this.logs.push({
            eventName: record.eventName as string,
            body: (record.body as Value).stringValue!,
            timeUnixNano: record.timeUnixNano as number,
            attributes: attrs(record.attributes as KeyValues),
            resource: attrs(resourceLogs.resource.attributes),
          });
  }

  private receiveMetrics(body: Buffer): void {
    type Points = { dataPoints: { asDouble?: number; asInt?: number; attributes: KeyValues }[] };
    const request = MetricsRequest.toObject(MetricsRequest.decode(body), decodeOptions) as {
      resourceMetrics: {
        resource: { attributes: KeyValues };
        scopeMetrics: { metrics: { name: string; sum?: Points & { isMonotonic?: boolean }; gauge?: Points }[] }[];
      }[];
    };
    const points: ReceivedPoint[] = [];
    for (const resourceMetrics of request.resourceMetrics)
      for (const scope of resourceMetrics.scopeMetrics)
        for (const metric of scope.metrics) {
          const data = metric.sum ?? metric.gauge;
          for (const point of data?.dataPoints ?? [])
            points.push({
              name: metric.name,
              kind: metric.sum ? 'sum' : 'gauge',
              ...(metric.sum ? { monotonic: metric.sum.isMonotonic ?? false } : {}),
              value: point.asDouble ?? point.asInt ?? 0,
              attributes: attrs(point.attributes),
              resource: attrs(resourceMetrics.resource.attributes),
            });
        }
    this.metricRequests.push(points);
  }

  seqs(): number[] {
    return this.logs.map((log) => log.attributes['agent_lanes.audit.seq'] as number);
  }
}
