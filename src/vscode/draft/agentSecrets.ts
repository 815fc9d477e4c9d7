import * as vscode from 'vscode';
import type { AgentConfig } from '../../core/draft/agentConfig';

/** SecretStorage key of one secret an agent's configuration names. */
const secretKey = (agentId: string, name: string) => `agentLanes.agentSecret.${agentId}.${name}`;

/** The values of the secrets an agent names; the names with no value yet are listed. */
export async function readAgentSecrets(
  secrets: vscode.SecretStorage,
  agent: AgentConfig,
): Promise<{ values: Record<string, string>; missing: string[] }> {
  const values: Record<string, string> = {};
  const missing: string[] = [];
  for (const name of agent.secrets ?? []) {
    const value = await secrets.get(secretKey(agent.id, name));
    if (value) values[name] = value;
    else missing.push(name);
  }
  return { values, missing };
}

/** Keeps one secret of an agent (a preset's API key asked for on first use, or "Set Agent Secret…"). */
export async function storeAgentSecret(secrets: vscode.SecretStorage, agentId: string, name: string, value: string): Promise<void> {
  await secrets.store(secretKey(agentId, name), value);
}

export interface SetAgentSecretArgs {
  agentId?: string;
  name?: string;
  /** An empty value removes the secret. */
  value?: string;
}

/**
 * "Agent Lanes: Set Agent Secret…": keeps a value for a variable an agent's
 * configuration names under "secrets", in VS Code's SecretStorage (the OS
 * keychain), never in the settings. An empty value removes it.
 */
export async function setAgentSecret(
  secrets: vscode.SecretStorage,
  agents: readonly AgentConfig[],
  args: SetAgentSecretArgs = {},
): Promise<void> {
  const withSecrets = agents.filter((agent) => agent.secrets?.length);
  if (!withSecrets.length) {
    void vscode.window.showInformationMessage(
      'No agent names a secret yet. Pick a preset (Claude Code, Codex, Gemini CLI, OpenCode) in "Agent Lanes: New Draft…", which asks for its key, or add "secrets": ["ANTHROPIC_API_KEY"] (the variable names) to an agent in agentLanes.agents, then set each value here.',
    );
    return;
  }
  const agent =
    withSecrets.find((candidate) => candidate.id === args.agentId) ??
    (args.agentId
      ? undefined
      : (
          await vscode.window.showQuickPick(
            withSecrets.map((candidate) => ({ label: candidate.label, description: candidate.id, agent: candidate })),
            { title: 'Set Agent Secret (1/3): the agent', ignoreFocusOut: true },
          )
        )?.agent);
  if (!agent) {
    if (args.agentId) void vscode.window.showErrorMessage(`There is no agent "${args.agentId}" with secrets in agentLanes.agents.`);
    return;
  }
  const names = agent.secrets ?? [];
  const name =
    names.find((candidate) => candidate === args.name) ??
    (args.name
      ? undefined
      : await vscode.window.showQuickPick(names, {
          title: `Set Agent Secret (2/3): which variable of ${agent.label}?`,
          ignoreFocusOut: true,
        }));
  if (!name) {
    if (args.name)
      void vscode.window.showErrorMessage(`Agent "${agent.id}" names no secret "${args.name}"; its secrets are ${names.join(', ')}.`);
    return;
  }
  const value =
    args.value ??
    (await vscode.window.showInputBox({
      title: `Set Agent Secret (3/3): ${name} for ${agent.label}`,
      prompt:
        'Kept in your OS keychain through VS Code; given only to this agent, inside its boundary, and redacted from its output. Empty removes it.',
      password: true,
      ignoreFocusOut: true,
    }));
  if (value === undefined) return;
  if (value === '') {
    await secrets.delete(secretKey(agent.id, name));
    void vscode.window.showInformationMessage(`Removed ${name} of agent "${agent.label}".`);
    return;
  }
  await storeAgentSecret(secrets, agent.id, name, value);
  void vscode.window.showInformationMessage(`Saved ${name} for agent "${agent.label}" (in SecretStorage).`);
}
