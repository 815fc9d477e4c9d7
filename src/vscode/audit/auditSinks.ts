import * as vscode from 'vscode';
import type { Logger } from '../../core/logger';
import { AuditSinks, type SinkSource } from '../../infra/audit/sinks';
import { OTLP_ENDPOINT_SETTING, OtlpTelemetry } from '../../infra/telemetry/otlpTelemetry';
import { readConfig } from '../config';
import type { RepositoryRegistry } from '../repositories';

/** SecretStorage key of the Authorization header value sent to the audit sink. */
const SINK_AUTHORIZATION_SECRET = 'agentLanes.audit.sinkAuthorization';
const SINK_ENDPOINT_SETTING = 'agentLanes.audit.sinkEndpoint';
/** SecretStorage key of the Authorization header value sent to the OTLP receiver. */
const OTLP_AUTHORIZATION_SECRET = 'agentLanes.telemetry.otlpAuthorization';

/**
 * Ships every open repository's audit log to the sink that
 * agentLanes.audit.sinkEndpoint names, with the token kept in SecretStorage;
 * and, when agentLanes.telemetry.otlpEndpoint is set, its events and the
 * promotion metrics to that OTLP receiver (the OTel SDK loads only then).
 */
export class EditorAuditSinks implements vscode.Disposable {
  private readonly sinks: AuditSinks;
  private readonly telemetry: OtlpTelemetry;
  private warned: string | undefined;
  private warnedOtlp: string | undefined;
  private readonly configChanged: vscode.Disposable;

  constructor(
    private readonly registry: RepositoryRegistry,
    private readonly secrets: vscode.SecretStorage,
    logger: Logger,
  ) {
    this.sinks = new AuditSinks({
      getAuthorization: async () => (await secrets.get(SINK_AUTHORIZATION_SECRET)) || undefined,
      onInvalidEndpoint: (endpoint, error) => this.warnInvalid(endpoint, error),
      onChainBroken: (name, message) =>
        void vscode.window.showErrorMessage(`Agent Lanes stopped shipping the audit log of ${name}: ${message}`),
      logger,
    });
    this.telemetry = new OtlpTelemetry({
      version: String(
        (vscode.extensions.getExtension('agent-lanes.agent-lanes')?.packageJSON as { version?: unknown } | undefined)?.version ?? '0',
      ),
      logger,
      getAuthorization: async () => (await secrets.get(OTLP_AUTHORIZATION_SECRET)) || undefined,
      onInvalidEndpoint: (endpoint, error) => this.warnInvalidOtlp(endpoint, error),
      onChainBroken: (name, message) =>
        void vscode.window.showErrorMessage(`Agent Lanes stopped exporting the audit log of ${name} over OTLP: ${message}`),
    });
    this.configChanged = vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(SINK_ENDPOINT_SETTING))
        void this.sinks.configure(readConfig().config.auditSinkEndpoint, this.sources());
      if (event.affectsConfiguration(OTLP_ENDPOINT_SETTING))
        void this.telemetry.configure(readConfig().config.telemetryOtlpEndpoint, this.sources());
    });
    void this.sinks.configure(readConfig().config.auditSinkEndpoint, []);
    void this.telemetry.configure(readConfig().config.telemetryOtlpEndpoint, []);
  }

  private sources(): SinkSource[] {
    return this.registry.repositories().map((repo) => ({ root: repo.root, name: repo.name, audit: repo.lanes.context.audit }));
  }

  private warnInvalid(endpoint: string, error: string): void {
    if (this.warned === endpoint) return;
    this.warned = endpoint;
    void vscode.window.showWarningMessage(`Agent Lanes does not ship the audit log: ${error}`, 'Open Settings').then((choice) => {
      if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', SINK_ENDPOINT_SETTING);
    });
  }

  private warnInvalidOtlp(endpoint: string, error: string): void {
    if (this.warnedOtlp === endpoint) return;
    this.warnedOtlp = endpoint;
    void vscode.window.showWarningMessage(`Agent Lanes sends nothing over OTLP: ${error}`, 'Open Settings').then((choice) => {
      if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', OTLP_ENDPOINT_SETTING);
    });
  }

  /** Follows the open repositories: a sink for each new one, none for closed ones. */
  async sync(): Promise<void> {
    const sources = this.sources();
    await Promise.all([this.sinks.sync(sources), this.telemetry.sync(sources)]);
  }

  /** New events in the log of the repository at `root`. */
  notify(root: string): void {
    this.sinks.notify(root);
    this.telemetry.notify(root);
  }

  /** Stores the Authorization header value (undefined removes it) and reconnects every sink with it. */
  async setAuthorization(value: string | undefined): Promise<void> {
    if (value === undefined) await this.secrets.delete(SINK_AUTHORIZATION_SECRET);
    else await this.secrets.store(SINK_AUTHORIZATION_SECRET, value);
    await this.sinks.restart(this.sources());
  }

  /** Stores the OTLP receiver's Authorization header value (undefined removes it) and reconnects the log export with it. */
  async setOtlpAuthorization(value: string | undefined): Promise<void> {
    if (value === undefined) await this.secrets.delete(OTLP_AUTHORIZATION_SECRET);
    else await this.secrets.store(OTLP_AUTHORIZATION_SECRET, value);
    await this.telemetry.restart(this.sources());
  }

  dispose(): void {
    this.configChanged.dispose();
    this.sinks.dispose();
    void this.telemetry.dispose();
  }
}
