/** The section every Agent Lanes setting lives in. */
export const SETTINGS_SECTION = 'agentLanes';

/**
 * Every setting key, relative to the section; package.json declares the same
 * keys (test/unit/manifest.test.ts checks both directions).
 */
export const SettingKeys = {
  policyEndpoint: 'policy.endpoint',
  policyPublicKey: 'policy.publicKey',
  policyRefreshIntervalMinutes: 'policy.refreshIntervalMinutes',
  policyUser: 'policy.user',
  auditSinkEndpoint: 'audit.sinkEndpoint',
  telemetryOtlpEndpoint: 'telemetry.otlpEndpoint',
  sandboxContainerEngine: 'sandbox.containerEngine',
  sandboxDefaultImage: 'sandbox.defaultImage',
  sandboxDevcontainerCliPath: 'sandbox.devcontainerCliPath',
  agents: 'agents',
  agentPresetBaseUrls: 'agentPresets.baseUrls',
  githubApiBaseUrl: 'github.apiBaseUrl',
  pullRequestRemote: 'pullRequest.remote',
  draftWorktreePool: 'draft.worktreePool',
  draftSparsePaths: 'draft.sparsePaths',
} as const;

export type SettingKey = (typeof SettingKeys)[keyof typeof SettingKeys];

/** The full name of a setting, as people see it in the settings editor and in messages. */
export function settingName(key: SettingKey): string {
  return `${SETTINGS_SECTION}.${key}`;
}
