import * as vscode from 'vscode';
import type { AgentConfig } from '../../core/draft/agentConfig';
import { AGENT_PRESETS, type AgentPreset, findPreset, presetAgentConfig } from '../../core/draft/agentPresets';
import { AgentCliInstallError, findAgentCli, installAgentCli } from '../../infra/draft/agentCliCache';
import { checkPresetCli } from '../../infra/draft/agentPresetCheck';
import type { CommandKit } from '../commandKit';
import { readAgentSecrets, storeAgentSecret } from './agentSecrets';

/**
 * The real-agent presets in the New Draft picker: the CLI is installed once,
 * at its tested version, into the extension's storage (which the boundary
 * binds read-only for the run), and its API key is asked for once and kept
 * in SecretStorage.
 */
export interface PresetServices {
  kit: CommandKit;
  secrets: vscode.SecretStorage;
  /** Where preset CLIs are installed (the extension's global storage). */
  cliCache: string;
  /** agentLanes.agentPresets.baseUrls: per preset id, another API base URL (a gateway). */
  baseUrls: () => Readonly<Record<string, string>>;
}

export type PresetItem = vscode.QuickPickItem & { preset: AgentPreset };

/** One picker entry per preset, saying whether its CLI is installed yet. */
export async function presetItems(cliCache: string): Promise<PresetItem[]> {
  const items: PresetItem[] = [];
  for (const preset of AGENT_PRESETS) {
    const installed = await findAgentCli(cliCache, preset);
    items.push({
      label: `$(hubot) ${preset.label}`,
      description: `${preset.npmPackage}@${preset.version}`,
      detail: `${installed ? 'Installed' : 'Installs once (npm) on first use'} · key ${preset.apiKeyVar} · ${preset.permissionMode}`,
      preset,
    });
  }
  return items;
}

/** The agent configurations of the presets whose CLI is installed (for "Set Agent Secret…" and re-runs). */
export async function installedPresetConfigs(services: Pick<PresetServices, 'cliCache' | 'baseUrls'>): Promise<AgentConfig[]> {
  const configs: AgentConfig[] = [];
  for (const preset of AGENT_PRESETS) {
    const installed = await findAgentCli(services.cliCache, preset);
    if (installed) configs.push(configFor(preset, installed.program, services.baseUrls()));
  }
  return configs;
}

function configFor(preset: AgentPreset, program: string, baseUrls: Readonly<Record<string, string>>): AgentConfig {
  const baseUrl = baseUrls[preset.id];
  return presetAgentConfig(preset, program, baseUrl ? { baseUrl } : {});
}

/**
 * Makes a preset ready to run: installs its CLI when missing (with progress,
 * cancellable) and asks for its API key when SecretStorage has none.
 * Undefined when the user cancelled or the install failed (said in a message).
 */
export async function preparePreset(services: PresetServices, presetId: string): Promise<AgentConfig | undefined> {
  const preset = findPreset(presetId);
  if (!preset) return undefined;
  let installed = await findAgentCli(services.cliCache, preset);
  if (!installed) {
    try {
      installed = await services.kit.withProgress(
        `Agent Lanes: installing ${preset.label} ${preset.version} (npm, once)…`,
        (_report, signal) => installAgentCli(services.cliCache, preset, { signal }),
        { cancellable: true },
      );
    } catch (error) {
      if (error instanceof AgentCliInstallError) void vscode.window.showErrorMessage(error.message);
      else services.kit.showError(error, `Installing ${preset.label}`);
      return undefined;
    }
  }
  // The cache holds the tested version; a copy changed since is refused, never run on trust.
  const version = await checkPresetCli(preset, installed.program);
  if (!version.ok) {
    void vscode.window.showErrorMessage(version.message);
    return undefined;
  }
  const config = configFor(preset, installed.program, services.baseUrls());
  const { missing } = await readAgentSecrets(services.secrets, config);
  for (const name of missing) {
    const value = await vscode.window.showInputBox({
      title: `${preset.label} needs ${name}`,
      prompt: `Your ${preset.label} API key. Kept in your OS keychain through VS Code (never in settings); given only to ${preset.label}, inside its boundary, and redacted from its output. Change it later with "Agent Lanes: Set Agent Secret…".`,
      password: true,
      ignoreFocusOut: true,
      validateInput: (text) => (text.trim() ? undefined : `Paste the ${name} value, or press Escape to cancel.`),
    });
    if (!value?.trim()) return undefined;
    await storeAgentSecret(services.secrets, config.id, name, value.trim());
  }
  return config;
}
