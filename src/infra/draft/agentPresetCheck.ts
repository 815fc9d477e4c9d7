import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { AgentPreset } from '../../core/draft/agentPresets';

const run = promisify(execFile);

export type PresetCliCheck = { ok: true; version: string } | { ok: false; version?: string; message: string };

/**
 * Whether the program a preset would run is the version the preset was tested
 * with (`<program> --version`). Another version is refused with what to
 * install, never run on trust: its flags, events and requests may differ.
 */
export async function checkPresetCli(preset: AgentPreset, program: string): Promise<PresetCliCheck> {
  const spec = `${preset.npmPackage}@${preset.version}`;
  const output = await run(program, ['--version'], { timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } })
    .then((result) => result.stdout.trim())
    .catch((error: Error) => error);
  if (output instanceof Error)
    return {
      ok: false,
      message: `${preset.label} could not be started at ${program} (${output.message.split('\n')[0]}). Install the tested version with "npm install --prefix <folder> --ignore-scripts ${spec}".`,
    };
  const version = /(\d+\.\d+\.\d+(?:-[\w.]+)?)/.exec(output)?.[1];
  if (version === preset.version) return { ok: true, version };
  return {
    ok: false,
    ...(version ? { version } : {}),
    message: `${preset.label} at ${program} is version ${version ?? `"${output.slice(0, 80)}"`}, but Agent Lanes has tested ${preset.version} only. Install the tested version with "npm install --prefix <folder> --ignore-scripts ${spec}" (or "npm install -g ${spec}").`,
  };
}

/**
 * What to say when the preset's API key has no value; undefined when it has one.
 * @internal Exported for its unit tests; in the editor the picker asks for the key instead.
 */
export function missingPresetKey(preset: AgentPreset, secrets: Readonly<Record<string, string>>): string | undefined {
  if (secrets[preset.apiKeyVar]?.trim()) return undefined;
  return `${preset.label} needs an API key in ${preset.apiKeyVar}, and none is set. Set it with "Lanes: Set Agent Secret…" for the agent "${preset.id}"; it is kept in VS Code's secret storage and handed to this agent only.`;
}
