// The official dev container templates and images (test/fixtures/devcontainer-templates),
// each run through the sandbox's check under the built-in policy: what the
// corpus test asserts and the bench reports.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { builtinPolicyDocument } from '../../../src/core/policy/defaults';
import { sandboxPolicyFrom } from '../../../src/core/sandbox/sandboxPolicy';
import { checkSource } from '../../../src/infra/sandbox/containerSandbox';
import { SandboxError } from '../../../src/infra/sandbox/types';

// From out/test/unit/support (compiled) or test/unit/support (source): the repository root.
const root = [resolve(__dirname, '..', '..', '..', '..'), resolve(__dirname, '..', '..', '..')].find((dir) =>
  existsSync(join(dir, 'test', 'fixtures', 'devcontainer-templates')),
)!;
export const TEMPLATES_DIR = join(root, 'test', 'fixtures', 'devcontainer-templates');

export interface TemplateOutcome {
  /** `templates/<id>` or `images/<id>`. */
  name: string;
  outcome: 'passes' | 'refused' | 'syntaxError';
  message?: string;
}

export function templateNames(): string[] {
  return ['templates', 'images'].flatMap((kind) =>
    readdirSync(join(TEMPLATES_DIR, kind))
      .filter((id) => existsSync(join(TEMPLATES_DIR, kind, id, 'devcontainer.json')))
      .sort()
      .map((id) => `${kind}/${id}`),
  );
}

/** The check the sandbox runs before it starts anything, under the built-in policy. */
export async function checkTemplate(name: string): Promise<TemplateOutcome> {
  const folder = join(TEMPLATES_DIR, name);
  const { policy } = sandboxPolicyFrom(builtinPolicyDocument().lanes!.sandbox as Parameters<typeof sandboxPolicyFrom>[0]);
  const source = {
    devcontainer: { path: '.devcontainer/devcontainer.json', text: readFileSync(join(folder, 'devcontainer.json'), 'utf8') },
    // The repository is the template's folder: .devcontainer/ holds what the fixture kept.
    readBaseFile: async (path: string) => {
      const file = path.startsWith('.devcontainer/') ? join(folder, path.slice('.devcontainer/'.length)) : undefined;
      return file && existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    },
    prepare: [],
  };
  try {
    await checkSource({ source, policy });
    return { name, outcome: 'passes' };
  } catch (error) {
    if (!(error instanceof SandboxError)) throw error;
    return { name, outcome: error.kind === 'configSyntax' ? 'syntaxError' : 'refused', message: error.message };
  }
}
