import { LaneError } from '../../core/errors';

export type AuditLogErrorCode = 'foreignRepository' | 'notAuditLog' | 'locked' | 'tooLarge' | 'closed' | 'noRepository';

/** What went wrong with an audit log file; `code` (also the error's kind) says which. */
export class AuditLogError extends LaneError {
  constructor(
    readonly code: AuditLogErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}
