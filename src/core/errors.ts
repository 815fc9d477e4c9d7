/**
 * What a person can do about a lane error, shown as a button beside the message.
 * `command` is a command id (with optional arguments) the editor runs when chosen.
 */
export interface LaneErrorAction {
  readonly title: string;
  readonly command: string;
  readonly args?: readonly unknown[];
}

/**
 * The one base of the errors the lanes throw on purpose. `kind` says what went
 * wrong in a word a program can switch on; the message says, in words a person
 * reads, what is wrong and what to do. Anything that is not a LaneError is a
 * bug or an outside failure, and the editor reports it with its details in the log.
 */
export class LaneError extends Error {
  readonly kind: string;
  readonly actions: readonly LaneErrorAction[];

  constructor(kind: string, message: string, options: { actions?: readonly LaneErrorAction[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.kind = kind;
    this.actions = options.actions ?? [];
  }
}
