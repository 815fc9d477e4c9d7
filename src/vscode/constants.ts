/** Identifiers shared by package.json and the code. Keep them in step with package.json. */
export const EXTENSION_ID = 'agent-lanes.agent-lanes';
export const VIEW_CONTAINER_ID = 'agentLanes';
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
  verifyAuditLog: 'agentLanes.verifyAuditLog',
  repairAuditLog: 'agentLanes.repairAuditLog',
  exportAuditLog: 'agentLanes.exportAuditLog',
  exportProofBundle: 'agentLanes.exportProofBundle',
  showHistory: 'agentLanes.showHistory',
  setAuditSinkToken: 'agentLanes.setAuditSinkToken',
  runSandboxTasks: 'agentLanes.runSandboxTasks',
  promote: 'agentLanes.promote',
  stopSandboxTasks: 'agentLanes.stopSandboxTasks',
  showTaskLog: 'agentLanes.showTaskLog',
  cleanupSandboxes: 'agentLanes.cleanupSandboxes',
} as const;

/** Context keys used in `when` clauses. */
export const ContextKeys = {
  /** noFolder | noRepository | bareRepository | empty | ready | error */
  viewState: 'agentLanes.viewState',
  multiRepository: 'agentLanes.multiRepository',
} as const;

export type ViewState = 'loading' | 'noFolder' | 'noRepository' | 'bareRepository' | 'empty' | 'ready' | 'error';
