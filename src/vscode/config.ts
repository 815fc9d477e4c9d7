import * as vscode from 'vscode';
import { z } from 'zod';

/** Every setting key in one place; package.json declares the same keys. */
export const SettingKeys = {
  policyEndpoint: 'policy.endpoint',
  policyPublicKey: 'policy.publicKey',
  policyRefreshIntervalMinutes: 'policy.refreshIntervalMinutes',
  agents: 'agents',
} as const;

const AgentSchema = z.object({
  id: z.string().min(1),
  label: z.string().min(1),
  command: z.array(z.string()).min(1),
  env: z.record(z.string(), z.string()).optional(),
  timeoutSeconds: z.number().positive().optional(),
});
export type AgentConfig = z.infer<typeof AgentSchema>;

const ConfigSchema = z.object({
  policyEndpoint: z.string().default(''),
  policyPublicKey: z.string().default(''),
  policyRefreshIntervalMinutes: z.number().min(1).default(15),
  agents: z.array(AgentSchema).default([]),
});
export type LanesConfig = z.infer<typeof ConfigSchema>;

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
  const raw: Record<string, unknown> = {};
  for (const [field, key] of Object.entries(SettingKeys)) raw[field] = section.get(key);
  const problems: ConfigProblem[] = [];
  for (const [field, key] of Object.entries(SettingKeys)) {
    const fieldSchema = ConfigSchema.shape[field as keyof LanesConfig];
    const parsed = fieldSchema.safeParse(raw[field]);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
      problems.push({ key: `agentLanes.${key}`, message: `agentLanes.${key}${where}: ${issue?.message ?? 'invalid value'}` });
      raw[field] = undefined;
    }
  }
  return { config: ConfigSchema.parse(raw), problems };
}
