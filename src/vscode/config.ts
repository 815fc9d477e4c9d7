import * as vscode from 'vscode';
import { z } from 'zod';
import { type AgentConfig, parseAgentsSetting } from '../core/draft/agentConfig';

/** agentLanes.sandbox.defaultImage when unset; package.json declares the same default. */
export const DEFAULT_SANDBOX_IMAGE = 'mcr.microsoft.com/devcontainers/base:bookworm';

/** Every setting key in one place; package.json declares the same keys. */
export const SettingKeys = {
  policyEndpoint: 'policy.endpoint',
  policyPublicKey: 'policy.publicKey',
  policyRefreshIntervalMinutes: 'policy.refreshIntervalMinutes',
  policyUser: 'policy.user',
  auditSinkEndpoint: 'audit.sinkEndpoint',
  sandboxContainerEngine: 'sandbox.containerEngine',
  sandboxDefaultImage: 'sandbox.defaultImage',
  sandboxDevcontainerCliPath: 'sandbox.devcontainerCliPath',
  agents: 'agents',
} as const;

const ScalarsSchema = z.object({
  policyEndpoint: z.string().default(''),
  policyPublicKey: z.string().default(''),
  policyRefreshIntervalMinutes: z.number().min(1).default(15),
  policyUser: z.record(z.string(), z.unknown()).optional(),
  auditSinkEndpoint: z.string().default(''),
  sandboxContainerEngine: z.enum(['auto', 'docker', 'podman']).default('auto'),
  sandboxDefaultImage: z.string().trim().min(1).default(DEFAULT_SANDBOX_IMAGE),
  sandboxDevcontainerCliPath: z.string().default(''),
});

export type LanesConfig = z.infer<typeof ScalarsSchema> & { agents: AgentConfig[] };

export interface ConfigProblem {
  key: string;
  message: string;
}

/**
 * Reads the settings through one typed, validated accessor. A setting with a
 * wrong shape falls back to its default and is reported, never thrown.
 */
export function readConfig(scope?: vscode.ConfigurationScope): { config: LanesConfig; problems: ConfigProblem[] } {
  const section = vscode.workspace.getConfiguration('agentLanes', scope);
  const problems: ConfigProblem[] = [];
  const raw: Record<string, unknown> = {};
  for (const field of Object.keys(ScalarsSchema.shape) as (keyof typeof ScalarsSchema.shape)[]) {
    const key = SettingKeys[field];
    const value = section.get(key);
    const parsed = ScalarsSchema.shape[field].safeParse(value);
    if (parsed.success) raw[field] = value;
    else
      problems.push({
        key: `agentLanes.${key}`,
        message: `agentLanes.${key}: ${parsed.error.issues[0]?.message ?? 'invalid value'}; the default is used.`,
      });
  }
  const agents = parseAgentsSetting(section.get(SettingKeys.agents));
  for (const message of agents.errors) problems.push({ key: 'agentLanes.agents', message });
  return { config: { ...ScalarsSchema.parse(raw), agents: agents.agents }, problems };
}
