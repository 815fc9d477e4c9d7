import * as vscode from 'vscode';
import type { AgentReport } from '../../core/evidence';
import { AgentReportSchema } from '../../core/evidence';
import type { Logger } from '../../core/logger';
import { WorktreeFiles } from '../../infra/draft/worktreeFiles';
import type { RepoContext, RepositoryRegistry } from '../repositories';
import { LM_TOOLS } from '../constants';

interface ChangeInput {
  changeId: string;
}
interface PathInput extends ChangeInput {
  path: string;
}
interface ListInput extends ChangeInput {
  path?: string;
  recursive?: boolean;
}
interface WriteInput extends PathInput {
  content: string;
}
type EvidenceInput = ChangeInput & AgentReport;

const text = (value: string) => new vscode.LanguageModelToolResult([new vscode.LanguageModelTextPart(value)]);

/**
 * Lets an agent in VS Code's chat draft through the lane: every tool works on
 * one change's worktree only, and refuses anything outside it.
 */
export function createLanguageModelTools(deps: {
  registry: RepositoryRegistry;
  logger: Logger;
  trusted: () => boolean;
}): ReadonlyMap<string, vscode.LanguageModelTool<never>> {
  const { registry, logger } = deps;

  const draftOf = async (changeId: unknown): Promise<{ repo: RepoContext; files: WorktreeFiles; changeId: string }> => {
    if (!deps.trusted()) throw new Error('This workspace is not trusted, so Agent Lanes lets no agent write. Trust the workspace first.');
    if (typeof changeId !== 'string' || !/^[0-9a-f]{8}$/.test(changeId))
      throw new Error('Give the changeId of a draft (8 hex characters); list them with agentLanes_listDrafts.');
    await registry.ensureDiscovered();
    const found = registry.findChange(changeId);
    if (!found) throw new Error(`There is no change ${changeId}. List the open drafts with agentLanes_listDrafts.`);
    if (found.change.lane !== 'draft')
      throw new Error(`Change ${changeId} is in ${found.change.lane}, not Draft: only a draft's worktree can be changed.`);
    return { repo: found.repo, files: await WorktreeFiles.open(found.change.worktreePath), changeId };
  };

  const chatAgent = { type: 'agent', id: 'vscode-chat' } as const;

  const guard =
    <T>(
      name: string,
      run: (input: T, token: vscode.CancellationToken) => Promise<vscode.LanguageModelToolResult>,
    ): vscode.LanguageModelTool<T>['invoke'] =>
    async (options, token) => {
      try {
        return await run(options.input, token);
      } catch (error) {
        logger.warn(`Tool ${name} refused: ${(error as Error).message}`);
        // The agent reads the refusal and can correct itself; nothing was changed.
        return text(`Error: ${(error as Error).message}`);
      }
    };

  const confirmWrite = async (input: PathInput, verb: string): Promise<vscode.PreparedToolInvocation> => {
    const message = `${verb} \`${String(input.path)}\` in the worktree of change ${String(input.changeId)}`;
    try {
      const { repo, changeId } = await draftOf(input.changeId);
      const decision = await repo.lanes.draft.toolWriteDecision(changeId, String(input.path));
      if (decision.effect === 'requireApproval') {
        return {
          invocationMessage: message,
          confirmationMessages: {
            title: `Agent Lanes: ${verb.toLowerCase()} a file that needs approval`,
            message: new vscode.MarkdownString(`${message}.\n\nPolicy: ${decision.explanation}`),
          },
        };
      }
    } catch {
      // invoke() reports the problem to the agent.
    }
    return { invocationMessage: message };
  };

  const tools: [string, vscode.LanguageModelTool<never>][] = [
    [
      LM_TOOLS.listChanges,
      {
        invoke: guard<Record<string, never>>(LM_TOOLS.listChanges, async () => {
          await registry.ensureDiscovered();
          const drafts = registry.repositories().flatMap((repo) =>
            repo.store
              .all()
              .filter((c) => c.lane === 'draft')
              .map((c) => ({ changeId: c.id, title: c.title, task: c.task, repository: repo.name, base: c.baseRef })),
          );
          return text(
            drafts.length
              ? JSON.stringify(drafts, null, 2)
              : 'There are no drafts. Ask the user to start one with "Agent Lanes: New Draft…" and choose the chat agent.',
          );
        }),
      } as vscode.LanguageModelTool<never>,
    ],
    [
      LM_TOOLS.listFiles,
      {
        invoke: guard<ListInput>(LM_TOOLS.listFiles, async (input) => {
          const { files } = await draftOf(input.changeId);
          const listed = await files.list(input.path ?? '.', { recursive: input.recursive ?? false });
          const lines = listed.entries.map((e) => `${e.type === 'directory' ? 'dir ' : e.type === 'symlink' ? 'link' : 'file'} ${e.path}`);
          return text(`${lines.join('\n')}${listed.truncated ? '\n(more entries not shown)' : ''}`);
        }),
      } as vscode.LanguageModelTool<never>,
    ],
    [
      LM_TOOLS.readFile,
      {
        invoke: guard<PathInput>(LM_TOOLS.readFile, async (input) => {
          const { files } = await draftOf(input.changeId);
          return text((await files.read(input.path)).content);
        }),
      } as vscode.LanguageModelTool<never>,
    ],
    [
      LM_TOOLS.writeFile,
      {
        prepareInvocation: (options: vscode.LanguageModelToolInvocationPrepareOptions<WriteInput>) => confirmWrite(options.input, 'Write'),
        invoke: guard<WriteInput>(LM_TOOLS.writeFile, async (input) => {
          const { repo, files, changeId } = await draftOf(input.changeId);
          if (typeof input.content !== 'string') throw new Error('Give the new file content as a string in "content".');
          const decision = await repo.lanes.draft.toolWriteDecision(changeId, String(input.path));
          if (decision.effect === 'block') throw new Error(`Policy blocks this path: ${decision.explanation}`);
          const written = await files.write(input.path, input.content);
          await repo.lanes.draft.auditToolCall(changeId, chatAgent, LM_TOOLS.writeFile, {
            path: written.path,
            sizeBytes: written.sizeBytes,
            created: written.created,
          });
          return text(`${written.created ? 'Created' : 'Wrote'} ${written.path} (${written.sizeBytes} bytes).`);
        }),
      } as vscode.LanguageModelTool<never>,
    ],
    [
      LM_TOOLS.deleteFile,
      {
        prepareInvocation: (options: vscode.LanguageModelToolInvocationPrepareOptions<PathInput>) => confirmWrite(options.input, 'Delete'),
        invoke: guard<PathInput>(LM_TOOLS.deleteFile, async (input) => {
          const { repo, files, changeId } = await draftOf(input.changeId);
          const decision = await repo.lanes.draft.toolWriteDecision(changeId, String(input.path));
          if (decision.effect === 'block') throw new Error(`Policy blocks this path: ${decision.explanation}`);
          const deleted = await files.delete(input.path);
          await repo.lanes.draft.auditToolCall(changeId, chatAgent, LM_TOOLS.deleteFile, { path: deleted.path, type: deleted.type });
          return text(`Deleted ${deleted.path}.`);
        }),
      } as vscode.LanguageModelTool<never>,
    ],
    [
      LM_TOOLS.reportEvidence,
      {
        invoke: guard<EvidenceInput>(LM_TOOLS.reportEvidence, async (input) => {
          const { repo, changeId } = await draftOf(input.changeId);
          const { changeId: _ignored, ...report } = input;
          const parsed = AgentReportSchema.safeParse(report);
          if (!parsed.success) {
            const issue = parsed.error.issues[0];
            throw new Error(
              `The report is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}. Send summary, assumptions and confidenceLimits (lists of strings).`,
            );
          }
          const fields = await repo.lanes.draft.recordAgentReport(changeId, parsed.data);
          await repo.lanes.draft.auditToolCall(changeId, chatAgent, LM_TOOLS.reportEvidence, { fields });
          return text('Recorded. When you are done, tell the user to run "Agent Lanes: Finish Draft".');
        }),
      } as vscode.LanguageModelTool<never>,
    ],
  ];
  // The start-up shell registers the tools (they must exist before the lanes load) and forwards to these.
  return new Map(tools);
}
