import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
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
  // Once per program file (`--version` of a 400 MB native CLI takes about half a second): a file replaced or
  // touched since (another size or modification time) is asked again.
  const info = await stat(program).catch(() => undefined);
  const key = info ? `${preset.id}\0${program}\0${info.size}\0${info.mtimeMs}` : undefined;
  const known = key ? passed.get(key) : undefined;
  if (known) return known;
  const result = await askVersion(preset, program);
  if (key && result.ok) passed.set(key, result);
  return result;
}

/** Checks that passed, by program file (a failed check is asked again: the user may have fixed it). */
const passed = new Map<string, PresetCliCheck>();

async function askVersion(preset: AgentPreset, program: string): Promise<PresetCliCheck> {
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
