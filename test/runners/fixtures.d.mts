export function git(cwd: string, ...args: string[]): string;
export function tempDir(prefix?: string): string;
export function createSampleRepository(dir: string, options?: { name?: string }): string;
export function createBareRepository(dir: string): string;
export function createMultiRootWorkspace(root: string): { file: string; repoA: string; repoB: string; plain: string };
export function createScenarioWorkspaces(root: string): Record<string, { folder?: string; workspace?: string }>;
