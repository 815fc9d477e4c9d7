/** Identifiers shared by package.json and the code; test/unit/manifest.test.ts keeps them in step with package.json. */
export const EXTENSION_ID = 'agent-lanes.agent-lanes';
export const LANES_VIEW_ID = 'agentLanes.lanes';

export const Commands = {
  newDraft: 'agentLanes.newDraft',
  refresh: 'agentLanes.refresh',
  showPolicyState: 'agentLanes.showPolicyState',
  openSettings: 'agentLanes.openSettings',
  showLog: 'agentLanes.showLog',
  refreshPolicy: 'agentLanes.refreshPolicy',
  runAgent: 'agentLanes.runAgent',
  stopAgent: 'agentLanes.stopAgent',
  setAgentSecret: 'agentLanes.setAgentSecret',
  setUpAgent: 'agentLanes.setUpAgent',
  checkContainerEngine: 'agentLanes.checkContainerEngine',
  signInToGitHub: 'agentLanes.signInToGitHub',
  finishDraft: 'agentLanes.finishDraft',
  showAgentLog: 'agentLanes.showAgentLog',
  openChanges: 'agentLanes.openChanges',
  openWorktree: 'agentLanes.openWorktree',
  discard: 'agentLanes.discard',
  reconcile: 'agentLanes.reconcile',
  openReview: 'agentLanes.openReview',
  showEffectivePolicy: 'agentLanes.showEffectivePolicy',
  explainDecision: 'agentLanes.explainDecision',
  testPolicy: 'agentLanes.testPolicy',
  replayPolicy: 'agentLanes.replayPolicy',
  verifyAuditLog: 'agentLanes.verifyAuditLog',
  repairAuditLog: 'agentLanes.repairAuditLog',
  exportAuditLog: 'agentLanes.exportAuditLog',
  exportProofBundle: 'agentLanes.exportProofBundle',
  showHistory: 'agentLanes.showHistory',
  showPromotionMetrics: 'agentLanes.showPromotionMetrics',
  setAuditSinkToken: 'agentLanes.setAuditSinkToken',
  setOtlpToken: 'agentLanes.setOtlpToken',
  runSandboxTasks: 'agentLanes.runSandboxTasks',
  promote: 'agentLanes.promote',
  stopSandboxTasks: 'agentLanes.stopSandboxTasks',
  showTaskLog: 'agentLanes.showTaskLog',
  cleanupSandboxes: 'agentLanes.cleanupSandboxes',
  openPullRequest: 'agentLanes.openPullRequest',
  markReadyForReview: 'agentLanes.markReadyForReview',
  runProductionAction: 'agentLanes.runProductionAction',
  rollBack: 'agentLanes.rollBack',
  closeRelease: 'agentLanes.closeRelease',
  openPullRequestInBrowser: 'agentLanes.openPullRequestInBrowser',
  refreshPullRequest: 'agentLanes.refreshPullRequest',
  pushLaneBranch: 'agentLanes.pushLaneBranch',
  signInWithToken: 'agentLanes.signInWithToken',
  forgetGitHubToken: 'agentLanes.forgetGitHubToken',
} as const;

/** The review webview's view type (package.json's onWebviewPanel activation event names it). */
export const REVIEW_VIEW_TYPE = 'agentLanes.review';

/** Schemes of the read-only documents the diff editors show. */
export const GIT_CONTENT_SCHEME = 'agent-lanes-git';
export const REVIEW_CONTENT_SCHEME = 'agent-lanes-review';

/** The language model tools, as declared in package.json's contributes.languageModelTools. */
export const LM_TOOLS = {
  listChanges: 'agentLanes_listDrafts',
  listFiles: 'agentLanes_listFiles',
  readFile: 'agentLanes_readFile',
  writeFile: 'agentLanes_writeFile',
  deleteFile: 'agentLanes_deleteFile',
  reportEvidence: 'agentLanes_reportEvidence',
} as const;

/** VS Code's own commands that Agent Lanes runs. */
export const BuiltInCommands = {
  openSettings: 'workbench.action.openSettings',
  manageWorkspaceTrust: 'workbench.trust.manage',
  openFolder: 'vscode.openFolder',
  revertAndCloseActiveEditor: 'workbench.action.revertAndCloseActiveEditor',
} as const;

/** Context keys used in `when` clauses. */
export const ContextKeys = {
  /** noFolder | noRepository | bareRepository | empty | ready | error */
  viewState: 'agentLanes.viewState',
  multiRepository: 'agentLanes.multiRepository',
  /**
   * What the lanes hold, for the palette's when-clauses (set once the lanes were read): the lanes with a change,
   * and 'approved', 'agentRunning', 'sandboxRunning' when a change is so. Unread lanes hide no command.
   */
  lanesKnown: 'agentLanes.lanesKnown',
  changesIn: 'agentLanes.changesIn',
  /** The walkthrough's steps, done (its completionEvents): an agent set up, an engine found, signed in, a first draft. */
  setupAgentReady: 'agentLanes.setup.agentReady',
  setupEngineReady: 'agentLanes.setup.engineReady',
  setupSignedIn: 'agentLanes.setup.signedIn',
  setupDrafted: 'agentLanes.setup.drafted',
} as const;

export type ViewState = 'loading' | 'noFolder' | 'noRepository' | 'bareRepository' | 'empty' | 'ready' | 'error';
