import * as vscode from 'vscode';
import { z } from 'zod';
import { type AgentConfig, parseAgentsSetting } from '../core/draft/agentConfig';
import { GitHubError, normalizeApiBaseUrl } from '../infra/github/client';
import type { DraftSettings } from '../infra/lanes/draft/draftLane';
import type { SandboxSettings } from '../infra/lanes/sandbox/sandboxLane';
import { SETTINGS_SECTION, SettingKeys, settingName } from './settingKeys';

/** agentLanes.sandbox.defaultImage when unset; package.json declares the same default. */
const DEFAULT_SANDBOX_IMAGE = 'mcr.microsoft.com/devcontainers/base:bookworm';

const ScalarsSchema = z.object({
  policyEndpoint: z.string().default(''),
  policyPublicKey: z.string().default(''),
  policyRefreshIntervalMinutes: z.number().min(1).default(15),
  policyUser: z.record(z.string(), z.unknown()).optional(),
  auditSinkEndpoint: z.string().default(''),
  telemetryOtlpEndpoint: z.string().default(''),
  sandboxContainerEngine: z.enum(['auto', 'docker', 'podman']).default('auto'),
  sandboxDefaultImage: z.string().trim().min(1).default(DEFAULT_SANDBOX_IMAGE),
  sandboxDevcontainerCliPath: z.string().default(''),
  agentPresetBaseUrls: z.record(z.string(), z.url({ protocol: /^https?$/ })).default({}),
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
  const section = vscode.workspace.getConfiguration(SETTINGS_SECTION, scope);
  const problems: ConfigProblem[] = [];
  const raw: Record<string, unknown> = {};
  for (const field of Object.keys(ScalarsSchema.shape) as (keyof typeof ScalarsSchema.shape)[]) {
    const key = SettingKeys[field];
    const value = section.get(key);
    const parsed = ScalarsSchema.shape[field].safeParse(value);
    if (parsed.success) raw[field] = value;
    else
      problems.push({
        key: settingName(key),
        message: `${settingName(key)}: ${parsed.error.issues[0]?.message ?? 'invalid value'}; the default is used.`,
      });
  }
  const agents = parseAgentsSetting(section.get(SettingKeys.agents));
  for (const message of agents.errors) problems.push({ key: settingName(SettingKeys.agents), message });
  return { config: { ...ScalarsSchema.parse(raw), agents: agents.agents }, problems };
}

/** Where the Pull request lane pushes and which GitHub API it talks to. */
export interface PullRequestSettings {
  apiBaseUrl: string;
  remote: string;
}

/**
 * The Pull request lane's settings for a repository; a GitHubError (kind
 * badSetting) says which one is wrong. The remote may differ per folder.
 */
export function readPullRequestSettings(repoRoot: string): PullRequestSettings {
  const rawRemote = vscode.workspace
    .getConfiguration(SETTINGS_SECTION, vscode.Uri.file(repoRoot))
    .get<unknown>(SettingKeys.pullRequestRemote);
  const remoteSetting = settingName(SettingKeys.pullRequestRemote);
  if (rawRemote !== undefined && typeof rawRemote !== 'string')
    throw new GitHubError('badSetting', `${remoteSetting} must be the name of a git remote, such as "origin".`);
  const remote = (rawRemote ?? '').trim() || 'origin';
  if (remote.startsWith('-') || /[\s\0]/.test(remote))
    throw new GitHubError('badSetting', `${remoteSetting} is "${remote}", which is not a git remote name; use a name such as "origin".`);
  return { apiBaseUrl: readApiBaseUrl(), remote };
}

/** Machine-scoped (read without a folder): a workspace cannot send the token elsewhere. */
export function readApiBaseUrl(): string {
  const raw = vscode.workspace.getConfiguration(SETTINGS_SECTION).get<unknown>(SettingKeys.githubApiBaseUrl);
  if (raw !== undefined && typeof raw !== 'string')
    throw new GitHubError(
      'badSetting',
      `${settingName(SettingKeys.githubApiBaseUrl)} must be a URL such as https://HOST/api/v3, or empty for github.com.`,
    );
  return normalizeApiBaseUrl(raw);
}

/** The Sandbox lane's settings; extensionRoot holds the development install of the dev containers CLI. */
export function readSandboxSettings(extensionRoot: string): SandboxSettings {
  const { config } = readConfig();
  return {
    engine: config.sandboxContainerEngine,
    defaultImage: config.sandboxDefaultImage,
    ...(config.sandboxDevcontainerCliPath.trim() ? { devcontainerCliPath: config.sandboxDevcontainerCliPath.trim() } : {}),
    extensionRoot,
  };
}

/**
 * The Draft lane's worktree settings for a repository (a folder may set its
 * own sparse folders). A pool size that is not a whole number from 0 to 10
 * falls back to 1; the sparse folders are checked when a draft starts.
 */
export function readDraftSettings(repoRoot: string): DraftSettings {
  const section = vscode.workspace.getConfiguration(SETTINGS_SECTION, vscode.Uri.file(repoRoot));
  const size = section.get<unknown>(SettingKeys.draftWorktreePool);
  const sparse = section.get<unknown>(SettingKeys.draftSparsePaths);
  return {
    worktreePool: typeof size === 'number' && Number.isInteger(size) && size >= 0 && size <= 10 ? size : 1,
    sparsePaths: Array.isArray(sparse) ? (sparse as unknown[]) : [],
  };
}
