import { posix } from 'node:path';
import picomatch from 'picomatch';

/**
 * Dev container features as the sandbox sees them. A feature's
 * `devcontainer-feature.json` can ask for what the devcontainer.json does
 * not show (docker-in-docker is privileged, docker-outside-of-docker mounts
 * the engine socket, go and rust turn seccomp off), so a feature is checked
 * by its metadata. A local feature (`"./features/x"`, a folder next to the
 * devcontainer.json) is read from the base commit; a feature from a registry
 * cannot be read without the network, so it is refused unless policy names it.
 */

export interface FeatureReference {
  /** The key in `features`, as written. */
  id: string;
  /** For a local feature inside the configuration's folder: the repository path of its folder. */
  local?: string;
}

/** A key in `features` that names a folder rather than a registry reference. */
export function isLocalFeatureId(id: string): boolean {
  return id.startsWith('.') || id.startsWith('/');
}

/** The folder that holds the devcontainer.json, repository-relative (`.devcontainer`, or `` for `.devcontainer.json`). */
function configFolder(configPath: string): string {
  const folder = posix.dirname(posix.normalize(configPath));
  return folder === '.' ? '' : folder;
}

/**
 * The features a configuration uses, each with the repository path of its
 * folder when it is local and stays inside the configuration's folder (the
 * dev containers CLI reads local features only from there).
 */
export function featureReferences(config: Record<string, unknown>, configPath: string): FeatureReference[] {
  const features = config.features;
  if (typeof features !== 'object' || features === null || Array.isArray(features)) return [];
  const folder = configFolder(configPath);
  return Object.keys(features).map((id) => {
    if (!isLocalFeatureId(id) || id.startsWith('/')) return { id };
    const local = posix.normalize(posix.join(folder, id));
    const inside = folder === '' ? !local.startsWith('../') && local !== '..' : local.startsWith(`${folder}/`);
    return inside && !local.endsWith('/') ? { id, local } : { id };
  });
}

/** Whether policy's `allowFeatures` names this registry feature (exact, or a glob such as `ghcr.io/devcontainers/features/*`). */
export function isFeatureAllowed(id: string, allowed: readonly string[] | undefined): boolean {
  const patterns = (allowed ?? []).filter((pattern) => pattern.trim() !== '');
  const withoutVersion = id.replace(/(?::[\w][\w.-]*|@sha256:[0-9a-f]+)$/, '');
  return patterns.some(
    (pattern) =>
      pattern === id || pattern === withoutVersion || picomatch.isMatch(id, pattern) || picomatch.isMatch(withoutVersion, pattern),
  );
}

/** Fields of devcontainer-feature.json that describe the feature rather than the container; not checked. */
export const DESCRIPTIVE_FEATURE_FIELDS = new Set([
  'id',
  'version',
  'name',
  'description',
  'documentationURL',
  'licenseURL',
  'keywords',
  'options',
  'customizations',
  'legacyIds',
  'deprecated',
  'installsAfter',
]);
