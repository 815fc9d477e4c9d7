import assert from 'node:assert/strict';
import { LaneError } from '../../src/core/errors';
import { LanesConfigError, parseLanesConfig } from '../../src/core/sandbox/lanesConfig';
import { SandboxInputError } from '../../src/infra/lanes/sandbox/sandboxLane';
import { type ContainerEngine, EngineError, runEngine } from '../../src/infra/sandbox/engine';
import { SandboxError } from '../../src/infra/sandbox/types';

describe('sandbox errors are lane errors', () => {
  it('keeps each error class its name and fields, with a kind a program can switch on', async () => {
    const sandbox = new SandboxError('imageMissing', 'No image.');
    assert.ok(sandbox instanceof LaneError);
    assert.deepEqual([sandbox.name, sandbox.kind, sandbox.message], ['SandboxError', 'imageMissing', 'No image.']);

    const input = new SandboxInputError('Finish the draft first.');
    assert.ok(input instanceof LaneError);
    assert.deepEqual([input.name, input.kind], ['SandboxInputError', 'sandboxInput']);

    // A real process that fails stands in for the engine.
    const engine: ContainerEngine = { kind: 'podman', path: process.execPath, version: 'test' };
    const failed = await runEngine(engine, ['-e', 'process.exit(3)']).catch((error: unknown) => error);
    assert.ok(failed instanceof EngineError && failed instanceof LaneError);
    assert.deepEqual([failed.name, failed.kind, failed.exitCode], ['EngineError', 'engine', 3]);

    let config: unknown;
    try {
      parseLanesConfig('tasks: 3\n');
    } catch (error) {
      config = error;
    }
    assert.ok(config instanceof LanesConfigError && config instanceof LaneError);
    assert.deepEqual([config.name, config.kind, config.fileName], ['LanesConfigError', 'lanesConfig', '.lanes/lanes.yaml']);
  });
});
